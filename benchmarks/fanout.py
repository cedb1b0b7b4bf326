"""N trivial tickets at once against the raw floor of the same work, measured in the same run.

    python3 benchmarks/fanout.py [--sizes 16 32 64] [--rounds 3]

runner: `runner run` of N script tickets (each writes and commits one file) at concurrency
N, wall time from start to exit (start-up, self-test, provisioning, collection and
integration included).
Raw floor: the same N pieces of work done as bluntly as possible, N threads at once, each a
`git clone --local` of the repo and a `docker run` of the same image over it that writes
the file, commits it and writes a bundle of the commit (what collection reads).
Each size's line gives the ratio runner/raw; the last line the ratio at 16 (the goal: at
most 1.3) and how the runner's cost per ticket grows from the smallest size to the largest.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import docker  # noqa: E402

from tests.helpers import IDENTITY, make_repo, write_phase  # noqa: E402

IMAGE = "runner-worker:latest"
WORK = ("cd /workspace && echo {i} > f{i}.txt && git add f{i}.txt && git commit -qm f{i} && "
        "git bundle create -q /workspace/out.bundle HEAD")


def runner_seconds(root: Path, count: int) -> float:
    repo = make_repo(root / "repo")
    phase = write_phase(root / "p.yaml", {"name": f"fanout{count}", "concurrency": count,
                                           "tickets": [{"id": f"T{i}", "agent": "script",
                                                        "run": f"echo {i} > f{i}.txt"}
                                                       for i in range(count)]})
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "runner", "run", str(phase), "--repo",
                           str(repo)], capture_output=True, text=True)
    took = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"runner run failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return took


def raw_seconds(root: Path, count: int, client: docker.DockerClient) -> float:
    repo = make_repo(root / "raw-repo")

    def one(i: int) -> None:
        clone = root / f"raw-{i}"
        subprocess.run(["git", "clone", "-q", "--local", str(repo), str(clone)], check=True)
        client.containers.run(IMAGE, ["sh", "-c", WORK.format(i=i)], remove=True,
                              network_mode="none", environment=IDENTITY,
                              volumes={str(clone): {"bind": "/workspace", "mode": "rw"}},
                              labels={"runner.bench": "fanout"})

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=count) as pool:
        list(pool.map(one, range(count)))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    client = docker.from_env(max_pool_size=max(args.sizes) + 8)
    ratios, per_ticket = {}, {}
    for count in args.sizes:
        mine, raw = [], []
        for _ in range(args.rounds):       # alternating, so load slows both alike
            with tempfile.TemporaryDirectory(prefix="runner-bench-fanout-") as tmp:
                raw.append(raw_seconds(Path(tmp), count, client))
                mine.append(runner_seconds(Path(tmp), count))
        took, floor = statistics.median(mine), statistics.median(raw)
        ratios[count], per_ticket[count] = took / floor, took / count
        print(f"{count:3} tickets: runner {took:6.1f} s, raw floor {floor:6.1f} s, ratio "
              f"{took / floor:.2f}, runner per ticket {took / count * 1000:.0f} ms")
    small, large = min(args.sizes), max(args.sizes)
    print(f"ratio at {small}: {ratios[small]:.2f} (goal: at most 1.3); per-ticket cost at "
          f"{large} / at {small}: {per_ticket[large] / per_ticket[small]:.2f} (linear: at "
          "most 1)")


if __name__ == "__main__":
    main()
