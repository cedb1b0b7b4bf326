"""Four workers resolving the same dependencies through the gateway's cache: a cold cache, a
warm one, and the same step on this machine with a warm pip cache, in one run.

    python3 benchmarks/depcache.py [--packages 30] [--kb 300] [--rounds 3]

The index is the tests' own (tests/fakes/package_index.py) on 127.0.0.1: N pure-Python wheels
of K KB each, one project depending on all the others, so the figures are the cache's and
not a registry's weather. Each ticket installs the project with the worker image's own pip
(Debian's, in a project image built from a Dockerfile) into /tmp and prints how long the
step took; the host step is the host's pip installing the same into a folder, four at once,
from the same index, with its cache warmed first. Printed per run: upstream requests and
bytes (what the index served), and the dependency step's median seconds. Last line: the
warm worker's step as a ratio to the warm host's (goal ≤ 1.3×).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fakes.package_index import PackageIndex, make_wheel  # noqa: E402
from tests.helpers import make_repo, write_phase  # noqa: E402

WORKERS = 4
DOCKERFILE = """FROM debian:bookworm-slim
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \\
      python3 python3-pip && rm -rf /var/lib/apt/lists/*
"""
PIP = "-m pip install -q --disable-pip-version-check --no-compile --root-user-action=ignore"


def step(options: str = "") -> str:
    """The timed dependency step, as a shell line that prints STEP <milliseconds>."""
    return (f"s=$(date +%s%N); python3 {PIP} {options} --target /tmp/deps top "
            "&& e=$(date +%s%N) && echo STEP $(( (e - s) / 1000000 ))")


def worker_run(phase_file: Path, repo: Path) -> list[float]:
    proc = subprocess.run([sys.executable, "-m", "runner", "run", str(phase_file), "--repo",
                           str(repo), "--json", "--allow-overlap"], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        raise SystemExit(f"runner run failed:\n{proc.stderr[-3000:]}")
    run_dir = Path(json.loads(proc.stdout)["run_dir"])
    return [int(re.findall(r"STEP (\d+)", (run_dir / "logs" / f"W{i}.log").read_text())[-1])
            / 1000 for i in range(WORKERS)]


def host_steps(index: PackageIndex, cache: Path) -> list[float]:
    def one(number: int) -> float:
        with tempfile.TemporaryDirectory() as target:
            started = time.perf_counter()
            subprocess.run([sys.executable, *PIP.split(), "--cache-dir", str(cache),
                            "--index-url", f"{index.url}/simple/", "--trusted-host",
                            "127.0.0.1", "--target", target, "top"],  # trusted: cached
                           check=True, env={"PATH": "/usr/bin:/bin", "HOME": str(cache)})
            return time.perf_counter() - started
    with ThreadPoolExecutor(WORKERS) as pool:
        return list(pool.map(one, range(WORKERS)))


def container_steps(index: PackageIndex, image: str, cache: Path) -> list[float]:
    """The same step in the same image, by a plain `docker run` on the host's network with
    a warm pip cache of its own: the worker's pip, without runner."""
    line = step(f"--cache-dir /cache --trusted-host 127.0.0.1 --index-url {index.url}/simple/")

    def one(number: int) -> float:
        out = subprocess.run(["docker", "run", "--rm", "--network", "host", "-v",
                              f"{cache}:/cache", image, "sh", "-c", line],
                             check=True, capture_output=True, text=True).stdout
        return int(re.findall(r"STEP (\d+)", out)[-1]) / 1000
    with ThreadPoolExecutor(WORKERS) as pool:
        return list(pool.map(one, range(WORKERS)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--packages", type=int, default=30)
    parser.add_argument("--kb", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with PackageIndex() as index, tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        names = [f"dep{i}" for i in range(args.packages)]
        for name in names:
            index.add_wheel(name, *make_wheel(name, "1.0", padding=args.kb << 10))
        index.add_wheel("top", *make_wheel("top", "1.0", tuple(names)))
        total = sum(len(d) for files in index.wheels.values() for d in files.values())
        repo = make_repo(root / "proj", {"Dockerfile": DOCKERFILE, "README.md": "bench\n"})
        script = step() + " && echo done > NAME.txt\n"
        phase = write_phase(root / "p.yaml", {
            "name": "deps", "image": {"dockerfile": "proj/Dockerfile", "context": "proj"},
            "concurrency": WORKERS,
            "cache": {"mirrors": {"pypi": f"{index.url}/simple/"}, "dir": str(root / "c")},
            "tickets": [{"id": f"W{i}", "agent": "script", "run": script.replace("NAME", f"w{i}")}
                        for i in range(WORKERS)]})
        print(f"{args.packages + 1} wheels, {total / 1e6:.1f} MB in all; {WORKERS} workers")

        def measured(label: str, steps: list[float], before: int, before_bytes: int) -> float:
            requests = index.artifact_hits() - before
            print(f"{label:<28} upstream: {requests:3d} artifact requests, "
                  f"{(served_bytes(index) - before_bytes) / 1e6:6.1f} MB; step median "
                  f"{statistics.median(steps):.2f} s (of {', '.join(f'{s:.2f}' for s in steps)})")
            return statistics.median(steps)

        hits, sent = index.artifact_hits(), served_bytes(index)
        measured("workers, cold cache", worker_run(phase, repo), hits, sent)
        warm, host, plain = [], [], []
        host_cache, container_cache = root / "host-cache", root / "container-cache"
        built = subprocess.run([sys.executable, "-m", "runner", "images", "build", "--phase",
                                str(phase)], capture_output=True, text=True, check=True)
        image = built.stdout.strip().splitlines()[-1].removeprefix("image: ")
        host_steps(index, host_cache)                       # warms the host's pip cache
        container_steps(index, image, container_cache)      # and the container's
        for _ in range(args.rounds):
            hits, sent = index.artifact_hits(), served_bytes(index)
            warm.append(measured("workers, warm cache", worker_run(phase, repo), hits, sent))
            hits, sent = index.artifact_hits(), served_bytes(index)
            host.append(measured("host pip, warm host cache", host_steps(index, host_cache),
                                 hits, sent))
            hits, sent = index.artifact_hits(), served_bytes(index)
            plain.append(measured("docker run, warm pip cache",
                                  container_steps(index, image, container_cache), hits, sent))
    worker_step, host_step = statistics.median(warm), statistics.median(host)
    plain_step = statistics.median(plain)
    print(f"warm worker step / the image's pip by docker run, warm: "
          f"{worker_step / plain_step:.2f} ({worker_step:.2f} s / {plain_step:.2f} s)")
    print(f"warm worker step / warm host step: {worker_step / host_step:.2f} "
          f"({worker_step:.2f} s / {host_step:.2f} s)")


def served_bytes(index: PackageIndex) -> int:
    sizes = {f"/files/{n}": len(d) for files in index.wheels.values() for n, d in files.items()}
    return sum(sizes.get(path, 0) * count for path, count in index.hits.items())


if __name__ == "__main__":
    main()
