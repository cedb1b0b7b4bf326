"""The runner's memory for a big phase, against the same runner running a one-ticket phase,
measured in the same run.

    python3 benchmarks/memory.py [--tickets 1000] [--concurrency 16]

`runner run` of N script tickets (each writes and commits one file) at the given
concurrency; the runner's peak resident set (VmHWM, from /proc/<pid>/status, read until it
exits). The baseline is the same for a phase of one ticket. The last line gives the peak for
N tickets (the goal: under 300 MB for 1,000) and its ratio to the baseline.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.helpers import make_repo, write_phase  # noqa: E402


def status_kb(pid: int, field: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def peak_mb(root: Path, count: int, concurrency: int) -> tuple[float, float]:
    repo = make_repo(root / "repo")
    phase = write_phase(root / "p.yaml", {"name": f"memory{count}",
                                           "concurrency": min(concurrency, count),
                                           "tickets": [{"id": f"T{i}", "agent": "script",
                                                        "run": f"echo {i} > f{i}.txt"}
                                                       for i in range(count)]})
    started = time.perf_counter()
    with open(root / "stdout.json", "w") as out, open(root / "stderr.log", "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "runner", "run", str(phase), "--repo",
                                 str(repo), "--json"], stdout=out, stderr=err)
        peak = 0
        while proc.poll() is None:
            peak = max(peak, status_kb(proc.pid, "VmHWM") or 0)
            time.sleep(0.2)
    if proc.returncode != 0:
        doc = json.loads((root / "stdout.json").read_text() or "{}")
        failed = [(t["id"], t["status"], t["reason"]) for t in doc.get("tickets", [])
                  if t["status"] != "integrated"]
        raise SystemExit(f"runner run failed ({proc.returncode}): {failed[:5]}\n"
                         f"{(root / 'stderr.log').read_text()[-3000:]}")
    return peak / 1024, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tickets", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="runner-bench-memory-") as tmp:
        base, _ = peak_mb(Path(tmp) / "one", 1, 1)
        big, took = peak_mb(Path(tmp) / "many", args.tickets, args.concurrency)
    print(f"one ticket: peak {base:.0f} MB")
    print(f"{args.tickets} tickets at {args.concurrency} at once: peak {big:.0f} MB "
          f"({took:.0f} s)")
    print(f"peak for {args.tickets} tickets: {big:.0f} MB (goal: under 300 MB); ratio to one "
          f"ticket: {big / base:.2f}")


if __name__ == "__main__":
    main()
