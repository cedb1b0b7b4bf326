"""Planning and scheduling cost for big phases, against a raw baseline measured in the same
run: Python's own graphlib ordering the same tickets.

    python3 benchmarks/plan.py [--tickets 10000] [--chain 5000] [--rounds 3]

For a phase of N independent tickets (each with a `paths` entry of its own, so the overlap
rule is exercised) and one of a dependency chain of M tickets, it measures:
- load: reading and validating the phase file (load_phase);
- plan: the waves `runner run --dry-run` prints (plan_waves);
- schedule: the scheduler driving every ticket to its end (schedule, 16 workers), with a
  worker that returns at once and an integration that accepts it: the containers are not
  the point, the lead's bookkeeping between them is;
- dry-run: `runner run --dry-run` of the N-ticket phase end to end (a subprocess; it also
  asks Docker whether the image is present).
The last line is the planning and scheduling logic of both phases, plan + schedule (the
goal: under 2 s), with loading them beside it, and its ratio to graphlib's static_order()
of the same graphs.
"""

from __future__ import annotations

import argparse
import graphlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runner.records.events import EventCollector, TicketStatus  # noqa: E402
from runner.records.outcome import TicketOutcome  # noqa: E402
from runner.phase.model import Phase# noqa: E402
from runner.phase.load import load_phase# noqa: E402
from runner.run.scheduler import plan_waves, schedule  # noqa: E402


def write_phase(path: Path, count: int, *, chain: bool) -> Path:
    lines = ["name: bench", "tickets:"]
    for i in range(count):
        extra = f", depends_on: [T{i - 1}]" if chain and i else f", paths: [src/f{i}.txt]"
        lines.append(f"  - {{id: T{i}, agent: script, run: 'true'{extra}}}")
    path.write_text("\n".join(lines) + "\n")
    return path


def drive(phase: Phase) -> None:
    def run_one(ticket, start: str, attempt: int) -> TicketOutcome:
        return TicketOutcome(ticket.id, TicketStatus.COLLECTING, start=start, tip="f" * 40)

    schedule(phase, concurrency=16, run_one=run_one,
             integrate=lambda o: replace(o, status=TicketStatus.INTEGRATED),
             start_point=lambda t, attempt: "0" * 40, sink=EventCollector())


def lead_seconds(path: Path) -> tuple[float, float, float]:
    t0 = time.perf_counter()
    phase = load_phase(path)
    t1 = time.perf_counter()
    plan_waves(phase, concurrency=16, allow_overlap=False)
    t2 = time.perf_counter()
    drive(phase)
    return t1 - t0, t2 - t1, time.perf_counter() - t2


def graphlib_seconds(path: Path) -> float:
    phase = load_phase(path)
    t0 = time.perf_counter()
    list(graphlib.TopologicalSorter({t.id: t.depends_on for t in phase.tickets}).static_order())
    return time.perf_counter() - t0


def dry_run_seconds(root: Path, phase: Path) -> float:
    repo = root / "repo"
    if not repo.is_dir():
        env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b",
               "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@b"}
        subprocess.run(["git", "init", "-q", str(repo)], check=True)
        subprocess.run(["git", "-C", str(repo), "commit", "-q", "--allow-empty", "-m", "b"],
                       check=True, env=env)
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "runner", "run", str(phase), "--repo",
                           str(repo), "--dry-run"], capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"--dry-run failed ({proc.returncode}): {proc.stderr.strip()}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tickets", type=int, default=10_000)
    parser.add_argument("--chain", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="runner-bench-plan-") as tmp:
        root = Path(tmp)
        wide = write_phase(root / "wide.yaml", args.tickets, chain=False)
        chain = write_phase(root / "chain.yaml", args.chain, chain=True)
        logic, loads, raws = [], [], []
        for name, path in ((f"{args.tickets} independent", wide), (f"{args.chain}-long chain",
                                                                    chain)):
            runs = [lead_seconds(path) for _ in range(args.rounds)]
            load, plan, sched = (statistics.median(r[i] for r in runs) for i in range(3))
            raw = statistics.median(graphlib_seconds(path) for _ in range(args.rounds))
            print(f"{name:>18}: load {load:6.2f} s  plan {plan:6.2f} s  schedule "
                  f"{sched:6.2f} s  (graphlib {raw * 1000:.0f} ms)")
            logic.append(plan + sched)
            loads.append(load)
            raws.append(raw)
        dry = statistics.median(dry_run_seconds(root, wide) for _ in range(args.rounds))
        print(f"runner run --dry-run of {args.tickets} tickets: {dry:.2f} s")
        total = sum(logic)
        print(f"planning and scheduling, both phases: {total:.2f} s (goal: under 2 s; "
              f"loading them {sum(loads):.2f} s more); ratio to graphlib: "
              f"{total / sum(raws):.0f}")


if __name__ == "__main__":
    main()
