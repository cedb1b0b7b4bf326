"""Start-up time of runner's commands, against a bare `python3 -c pass` measured in the same run.

    python3 benchmarks/startup.py [--rounds 5]

Each round runs every command once, in turn, so that a loaded machine slows them alike:
`runner --version`, `runner status` in a fresh repo with no runs, and `runner run --dry-run`
of a one-ticket script phase. The dry run asks Docker whether the worker image is present
(a no-Docker machine answers "unknown" and still prints the plan), so its figure includes one
engine round trip. The runner measured is this checkout's (`python3 -m runner` with it first
on PYTHONPATH), not whichever one is installed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def make_repo(root: Path) -> tuple[Path, Path]:
    repo = root / "repo"
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    (repo / "README").write_text("bench\n")
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b",
           "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@b"}
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(repo), "commit", "-qm", "base"], check=True, env=env)
    phase = root / "phase.yaml"
    phase.write_text("name: bench\ntickets:\n  - {id: T, agent: script, run: 'true'}\n")
    return repo, phase


def timed(argv: list[str], *, cwd: Path, env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    env.pop("ANTHROPIC_API_KEY", None)   # a dry run needs none; make sure none is used
    runner = [sys.executable, "-m", "runner"]
    with tempfile.TemporaryDirectory(prefix="runner-bench-") as tmp:
        repo, phase = make_repo(Path(tmp))
        commands = {
            "python3 -c pass": [sys.executable, "-c", "pass"],
            "runner --version": [*runner, "--version"],
            "runner status": [*runner, "status"],
            "runner run --dry-run": [*runner, "run", str(phase), "--dry-run"],
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.rounds):
            for name, argv in commands.items():
                times[name].append(timed(argv, cwd=repo, env=env))
        image_line = subprocess.run([*runner, "run", str(phase), "--dry-run"], cwd=repo,
                                    env=env, capture_output=True, text=True).stdout
    image = next((line for line in image_line.splitlines() if line.startswith("image ")), "")
    med = {name: statistics.median(values) for name, values in times.items()}
    baseline = med["python3 -c pass"]
    print(f"median of {args.rounds} rounds; ratio to `python3 -c pass` in the same run")
    for name, seconds in med.items():
        print(f"{name:22}: {seconds * 1000:7.0f} ms  ratio {seconds / baseline:5.1f}")
    print(f"(the dry run asked Docker about the image: {image or 'no image line'})")


if __name__ == "__main__":
    main()
