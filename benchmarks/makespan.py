"""A phase's makespan against its critical path, start-up and self-test included.

    python3 benchmarks/makespan.py [--seconds 6] [--rounds 3]

Two phases of script tickets that sleep ``--seconds`` each, at concurrency 4, through the real
`runner run` (a subprocess, wall time from its start to its exit):
- two levels: A1..A4 independent, B1..B4 each depending on its A (critical path 2 × s);
- three levels: the same, and C1..C4 each depending on its B (critical path 3 × s).
The baseline is each phase's critical path; the goal is a makespan of at most
1.05 × critical path + 2 s. The last line is the worst ratio of makespan to that goal.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.helpers import make_repo, write_phase  # noqa: E402


def tickets(levels: int, seconds: float) -> list[dict]:
    out = []
    for level, name in zip(range(levels), "ABC"):
        for i in range(1, 5):
            ticket = {"id": f"{name}{i}", "agent": "script",
                      "run": f"sleep {seconds}; echo {name}{i} > {name}{i}.txt"}
            if level:
                ticket["depends_on"] = [f"{'ABC'[level - 1]}{i}"]
            out.append(ticket)
    return out


def makespan(root: Path, levels: int, seconds: float) -> float:
    repo = make_repo(root / "repo")
    phase = write_phase(root / "p.yaml", {"name": f"levels{levels}", "concurrency": 4,
                                           "tickets": tickets(levels, seconds)})
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "runner", "run", str(phase), "--repo",
                           str(repo)], capture_output=True, text=True)
    took = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"runner run failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    worst = 0.0
    for levels in (2, 3):
        runs = []
        for _ in range(args.rounds):
            with tempfile.TemporaryDirectory(prefix="runner-bench-makespan-") as tmp:
                runs.append(makespan(Path(tmp), levels, args.seconds))
        took, critical = statistics.median(runs), levels * args.seconds
        goal = 1.05 * critical + 2
        worst = max(worst, took / goal)
        print(f"{levels} levels of 4 tickets: makespan {took:5.1f} s, critical path "
              f"{critical:4.1f} s, runner's overhead {took - critical:4.1f} s "
              f"(goal: at most {goal:.1f} s)")
    print(f"worst makespan / (1.05 × critical path + 2 s): {worst:.2f} (goal: at most 1.00)")


if __name__ == "__main__":
    main()
