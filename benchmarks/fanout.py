"""N trivial tickets at once against the raw floor of the same work, measured in the same run.

    python3 benchmarks/fanout.py [--sizes 16 32 64] [--rounds 3]

runner: `runner run` of N script tickets (each writes and commits one file) at concurrency
N, wall time from start to exit (start-up, self-test, provisioning, collection and
integration included).
Raw floor: the same N pieces of work done as bluntly as possible, N threads at once, each a
`git clone --local` of the repo and a `docker run` of the same image over it that writes
the file, commits it and writes a bundle of the commit (what collection reads).
Each size's line gives the ratio runner/raw and the machine's CPU time per ticket for each
(all processes: runner, the engine, the containers; from /proc/stat), and of it runner's own
process and the git it runs on this machine (its rusage); the last line the ratio
at 16 (the goal: at most 1.3) and how the runner's cost per ticket grows from the smallest
size to the largest.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import docker  # noqa: E402

from tests.helpers import IDENTITY, make_repo, write_phase  # noqa: E402

IMAGE = "runner-worker:latest"
WORK = ("cd /workspace && echo {i} > f{i}.txt && git add f{i}.txt && git commit -qm f{i} && "
        "git bundle create -q /workspace/out.bundle HEAD")


def machine_cpu() -> float:
    """CPU seconds the whole machine has spent busy so far (every core; /proc/stat)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq = (int(f) for f in fields[:7])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def timed(work: Callable[[], None]) -> tuple[float, float]:
    """Wall and machine CPU seconds of ``work``."""
    cpu, started = machine_cpu(), time.perf_counter()
    work()
    return time.perf_counter() - started, machine_cpu() - cpu


def children_cpu() -> float:
    """CPU seconds of this process's children that ended: runner and the git it ran."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def runner_seconds(root: Path, count: int, lead: list[float]) -> None:
    repo = make_repo(root / "repo")
    phase = write_phase(root / "p.yaml", {"name": f"fanout{count}", "concurrency": count,
                                           "tickets": [{"id": f"T{i}", "agent": "script",
                                                        "run": f"echo {i} > f{i}.txt"}
                                                       for i in range(count)]})
    before = children_cpu()
    proc = subprocess.run([sys.executable, "-m", "runner", "run", str(phase), "--repo",
                           str(repo)], capture_output=True, text=True)
    lead.append(children_cpu() - before)
    if proc.returncode != 0:
        raise SystemExit(f"runner run failed ({proc.returncode}):\n{proc.stderr[-3000:]}")


def raw_seconds(root: Path, count: int, client: docker.DockerClient) -> None:
    repo = make_repo(root / "raw-repo")

    def one(i: int) -> None:
        clone = root / f"raw-{i}"
        subprocess.run(["git", "clone", "-q", "--local", str(repo), str(clone)], check=True)
        client.containers.run(IMAGE, ["sh", "-c", WORK.format(i=i)], remove=True,
                              network_mode="none", environment=IDENTITY,
                              volumes={str(clone): {"bind": "/workspace", "mode": "rw"}},
                              labels={"runner.bench": "fanout"})

    with ThreadPoolExecutor(max_workers=count) as pool:
        list(pool.map(one, range(count)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    client = docker.from_env(max_pool_size=max(args.sizes) + 8)
    ratios, per_ticket = {}, {}
    for count in args.sizes:
        mine, raw, lead = [], [], []
        for _ in range(args.rounds):       # alternating, so load slows both alike
            with tempfile.TemporaryDirectory(prefix="runner-bench-fanout-") as tmp:
                raw.append(timed(partial(raw_seconds, Path(tmp), count, client)))
                mine.append(timed(partial(runner_seconds, Path(tmp), count, lead)))
        took, floor = (statistics.median(wall for wall, _ in m) for m in (mine, raw))
        cpu, raw_cpu = (statistics.median(c for _, c in m) / count for m in (mine, raw))
        ratios[count], per_ticket[count] = took / floor, took / count
        print(f"{count:3} tickets: runner {took:6.1f} s, raw floor {floor:6.1f} s, ratio "
              f"{took / floor:.2f}, runner per ticket {took / count * 1000:.0f} ms; machine "
              f"CPU per ticket {cpu * 1000:.0f} ms (runner's process and its git "
              f"{statistics.median(lead) / count * 1000:.0f} ms), raw {raw_cpu * 1000:.0f} ms")
    small, large = min(args.sizes), max(args.sizes)
    print(f"ratio at {small}: {ratios[small]:.2f} (goal: at most 1.3); per-ticket cost at "
          f"{large} / at {small}: {per_ticket[large] / per_ticket[small]:.2f} (linear: at "
          "most 1)")


if __name__ == "__main__":
    main()
