"""Per-ticket provisioning on another machine's Docker engine against this machine's: the
same one-ticket phase (a file written and committed) through `runner run`, on the local
engine and on the test engine (dockerd in a container, over TCP on 127.0.0.1, no shared
disk: the clone is made inside from a bundle, in named volumes), in the same run.

    python3 benchmarks/engines.py [--rounds 5]

The figure is the ticket's own time (workspace to integrated) from `--json`, the median of
the rounds, alternating engines. Last line: the ratio remote/local.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import docker  # noqa: E402

from tests.engines.dind import running_engine  # noqa: E402
from tests.helpers import make_repo, write_phase  # noqa: E402

FILES = 500          # a repo of some size: the bundle has something to carry


def ticket_seconds(root: Path, *flags: str) -> float:
    files = {f"src/f{i}.txt": f"file {i}\n" * 20 for i in range(FILES)}
    repo = make_repo(root / "repo", files)
    phase = write_phase(root / "p.yaml", {"name": "bench", "tickets": [
        {"id": "T", "agent": "script", "run": "echo x > x.txt"}]})
    proc = subprocess.run([sys.executable, "-m", "runner", "run", str(phase), "--repo",
                           str(repo), "--json", "--no-preflight", *flags],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"runner run failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout)["tickets"][0]["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with running_engine(docker.from_env()) as remote:
        print(f"loading runner-worker:latest into the test engine: "
              f"{remote.load('runner-worker:latest'):.1f}s")
        local, far = [], []
        for _ in range(args.rounds):
            with tempfile.TemporaryDirectory() as tmp:
                local.append(ticket_seconds(Path(tmp) / "local"))
                far.append(ticket_seconds(Path(tmp) / "remote", "--engine", remote.url))
    mine, theirs = statistics.median(far), statistics.median(local)
    print(f"one ticket, local engine (linked clone, bind mounts)   : {theirs * 1000:6.0f} ms")
    print(f"one ticket, remote engine (bundle, clone in a volume)   : {mine * 1000:6.0f} ms")
    print(f"remote/local ratio: {mine / theirs:.2f}")


if __name__ == "__main__":
    main()
