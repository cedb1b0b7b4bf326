"""The scheduler's ordering rules, driven through its callables (no containers needed)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from runner.events import EventCollector, TicketStatus
from runner.phase import load_phase
from runner.scheduler import finished, schedule
from runner.worker import TicketOutcome


def _phase(tmp_path: Path, body: str):
    path = tmp_path / "p.yaml"
    path.write_text("name: p\ntickets:\n" + body)
    return load_phase(path)


def test_dependencies_concurrency_and_skips(tmp_path: Path) -> None:
    phase = _phase(tmp_path, "".join(
        f"  - {{id: {t}, agent: script, run: x, depends_on: {deps}}}\n"
        for t, deps in [("A", []), ("B", []), ("C", []), ("D", ["A"]), ("E", ["X"]),
                        ("X", []), ("F", ["E"])]))
    lock, active, peak, order = threading.Lock(), [0], [0], []
    head = ["base"]

    def run_one(ticket, start):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
            order.append((ticket.id, start))
        time.sleep(0.05)
        with lock:
            active[0] -= 1
        status = TicketStatus.FAILED if ticket.id == "X" else TicketStatus.COLLECTING
        return TicketOutcome(ticket.id, status, start=start, tip=f"tip-{ticket.id}")

    def integrate(outcome):
        head[0] = f"{head[0]}+{outcome.ticket}"
        return finished(outcome, TicketStatus.INTEGRATED)

    results = schedule(phase, concurrency=2, run_one=run_one, integrate=integrate,
                       start_point=lambda t: head[0] if t.depends_on else "base",
                       sink=EventCollector())
    assert peak[0] == 2
    status = {t: o.status for t, o in results.items()}
    assert status == {"A": "integrated", "B": "integrated", "C": "integrated",
                      "D": "integrated", "E": "skipped", "F": "skipped", "X": "failed"}
    assert "dependency X" in results["E"].reason and "dependency E" in results["F"].reason
    starts = dict(order)
    assert "A" in starts["D"].split("+")  # D started from a head that holds A's work
    assert starts["C"] == "base"            # independent tickets start from base
    assert list(results) == ["A", "B", "C", "D", "E", "X", "F"]
