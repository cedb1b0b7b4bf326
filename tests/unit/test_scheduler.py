"""The scheduler's ordering rules, driven through its callables (no containers needed)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from runner.phase.load import load_phase
from runner.records.events import EventCollector, TicketStatus
from runner.records.outcome import TicketOutcome
from runner.run.scheduler import finished, paths_overlap, plan_waves, schedule


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

    def run_one(ticket, start, attempt):
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
                       start_point=lambda t, n: head[0] if t.depends_on or n else "base",
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


def test_paths_overlap() -> None:
    assert paths_overlap(["app/src/**"], ["app/src/main/A.kt"])
    assert paths_overlap(["*.md"], ["docs/x.md"])            # no literal prefix: may overlap
    assert not paths_overlap(["docs/**"], ["src/**"])
    assert not paths_overlap(["docs/a.md"], ["docs/b.md"])
    assert not paths_overlap([], ["src/**"])                  # undeclared: reruns settle it


def test_plan_waves_dependencies_overlap_and_concurrency(tmp_path: Path) -> None:
    phase = _phase(tmp_path, "".join(
        f"  - {{id: {t}, agent: script, run: x, paths: {paths}, depends_on: {deps}}}\n"
        for t, paths, deps in [("A", ["src/**"], []), ("B", ["src/b"], []), ("C", ["docs"], []),
                               ("D", ["test"], ["A"]), ("E", ["e"], []), ("F", ["f"], [])]))
    waves = plan_waves(phase, concurrency=3, allow_overlap=False)
    assert [[p.ticket for p in wave] for wave in waves] == [["A", "C", "E"], ["B", "D", "F"]]
    waits = {p.ticket: p.waits_for for wave in waves for p in wave}
    assert waits["B"] == ("A (overlap)",) and waits["D"] == ("A (dependency)",)
    assert waits["F"] == ("a free worker (concurrency)",)
    together = plan_waves(phase, concurrency=6, allow_overlap=True)
    assert [p.ticket for p in together[0]] == ["A", "B", "C", "E", "F"]


def _waits(phase, concurrency: int = 4) -> tuple[list[list[str]], dict]:
    waves = plan_waves(phase, concurrency=concurrency, allow_overlap=False)
    return ([[p.ticket for p in wave] for wave in waves],
            {p.ticket: p.waits_for for wave in waves for p in wave})


def test_plan_waves_names_every_overlap_of_the_wave_before(tmp_path: Path) -> None:
    # Three tickets overlapping one another go one by one, each waiting for the one before it.
    chain = _phase(tmp_path, "".join(f"  - {{id: {t}, agent: script, run: x, paths: [src]}}\n"
                                     for t in "ABC"))
    order, waits = _waits(chain)
    assert order == [["A"], ["B"], ["C"]]
    assert waits == {"A": (), "B": ("A (overlap)",), "C": ("B (overlap)",)}
    # C overlaps A and B, which do not overlap each other; B joined the wave after C was
    # looked at, and is named all the same.
    both = _phase(tmp_path, "".join(
        f"  - {{id: {t}, agent: script, run: x, paths: [{p}]}}\n"
        for t, p in [("A", "src/a"), ("C", "src"), ("B", "src/b")]))
    order, waits = _waits(both)
    assert order == [["A", "B"], ["C"]]
    assert waits["C"] == ("A (overlap)", "B (overlap)")


def test_plan_waves_a_dependency_chain_plus_overlap(tmp_path: Path) -> None:
    # A <- B <- D is a chain; C overlaps B and D, which do not overlap each other.
    phase = _phase(tmp_path, "".join(
        f"  - {{id: {t}, agent: script, run: x, paths: [{p}], depends_on: {deps}}}\n"
        for t, p, deps in [("A", "a", []), ("B", "lib/b", ["A"]), ("C", "lib", []),
                           ("D", "lib/d", ["B"]), ("E", "e", [])]))
    order, waits = _waits(phase)
    assert order == [["A", "C", "E"], ["B"], ["D"]]
    # B waited for its dependency and for C, which joined the wave after B was looked at.
    assert waits["B"] == ("A (dependency)", "C (overlap)")
    # In wave 1 D waited for B and for C; C was done by wave 2, where only B held it back.
    assert waits["D"] == ("B (dependency)",)
    # One at a time, a full wave is the reason only when nothing else holds a ticket back.
    order, waits = _waits(phase, concurrency=1)
    assert order == [["A"], ["B"], ["C"], ["D"], ["E"]]
    assert waits == {"A": (), "B": ("A (dependency)",), "C": ("B (overlap)",),
                     "D": ("C (overlap)",), "E": ("a free worker (concurrency)",)}


def test_conflicts_are_rerun_one_at_a_time_from_the_new_head(tmp_path: Path) -> None:
    phase = _phase(tmp_path, "".join(f"  - {{id: {t}, agent: script, run: x}}\n" for t in "ABC"))
    head, starts, lock, live, peak_reruns = ["base"], [], threading.Lock(), [0], [0]

    def run_one(ticket, start, attempt):
        with lock:
            starts.append((ticket.id, attempt, start))
            live[0] += attempt > 0
            peak_reruns[0] = max(peak_reruns[0], live[0])
        time.sleep(0.05)
        with lock:
            live[0] -= attempt > 0
        return TicketOutcome(ticket.id, TicketStatus.COLLECTING, start=start, tip="t")

    def integrate(outcome):
        if outcome.start != head[0]:           # built on an old head: conflict
            return finished(outcome, TicketStatus.FAILED, "conflict", conflict=True)
        head[0] = f"{head[0]}+{outcome.ticket}"
        return finished(outcome, TicketStatus.INTEGRATED)

    results = schedule(phase, concurrency=3, run_one=run_one, integrate=integrate,
                       start_point=lambda t, n: head[0] if n else "base", sink=EventCollector())
    assert {o.status for o in results.values()} == {"integrated"}
    assert sorted(o.reruns for o in results.values()) == [0, 1, 1]   # whoever came first: 0
    assert peak_reruns[0] == 1
    first = next(t for t, o in results.items() if o.reruns == 0)
    reruns = [(t, s) for t, n, s in starts if n]
    assert reruns[0][1] == f"base+{first}"
    assert reruns[1][1] == f"base+{first}+{reruns[0][0]}"   # each rerun sees the one before


def _instant(phase, concurrency: int = 4, fail: set[str] = frozenset(), hold=None):
    """Drive ``phase`` with workers that return at once (``hold`` may keep one busy)."""
    order: list[str] = []
    lock = threading.Lock()

    def run_one(ticket, start, attempt):
        with lock:
            order.append(ticket.id)
        if hold:
            hold(ticket.id)
        status = TicketStatus.FAILED if ticket.id in fail else TicketStatus.COLLECTING
        return TicketOutcome(ticket.id, status, start=start, tip=f"tip-{ticket.id}")

    results = schedule(phase, concurrency=concurrency, run_one=run_one,
                       integrate=lambda o: finished(o, TicketStatus.INTEGRATED),
                       start_point=lambda t, n: "base", sink=EventCollector())
    return order, results


def test_a_long_chain_runs_in_order_and_a_failure_skips_all_after_it(tmp_path: Path) -> None:
    count = 3000
    phase = _phase(tmp_path, "".join(
        f"  - {{id: T{i}, agent: script, run: x{f', depends_on: [T{i - 1}]' if i else ''}}}\n"
        for i in range(count)))
    order, results = _instant(phase)
    assert order == [f"T{i}" for i in range(count)]
    assert all(o.status == "integrated" for o in results.values())
    order, results = _instant(phase, fail={"T10"})
    assert order == [f"T{i}" for i in range(11)]
    assert results["T10"].status == "failed"
    skipped = [t for t, o in results.items() if o.status == "skipped"]
    assert skipped == [f"T{i}" for i in range(11, count)]
    assert results["T11"].reason == "dependency T10 did not succeed"
    assert results["T12"].reason == "dependency T11 did not succeed"


def test_a_ticket_overlapping_a_running_one_waits_for_it_then_goes_in_phase_order(
        tmp_path: Path) -> None:
    # A holds src; B and D overlap it and wait; C and E do not and go first.
    phase = _phase(tmp_path, "".join(
        f"  - {{id: {t}, agent: script, run: x, paths: [{p}]}}\n"
        for t, p in [("A", "src"), ("B", "src/b"), ("C", "docs"), ("D", "src/d"), ("E", "e")]))
    release = threading.Event()

    def hold(ticket_id: str) -> None:
        if ticket_id == "A":
            assert release.wait(10)
        elif ticket_id == "E":
            release.set()          # C and E ran while A held src

    order, results = _instant(phase, concurrency=3, hold=hold)
    assert order[:3] == ["A", "C", "E"] and order[3:] == ["B", "D"]
    assert all(o.status == "integrated" for o in results.values())


def test_plan_waves_of_thousands_of_tickets(tmp_path: Path) -> None:
    phase = _phase(tmp_path, "".join(
        f"  - {{id: T{i}, agent: script, run: x, paths: [f{i % 5}]}}\n" for i in range(2000)))
    waves = plan_waves(phase, concurrency=4, allow_overlap=False)
    # Five paths, four workers: every wave is full but the last; no wave holds a path twice.
    assert sum(len(w) for w in waves) == 2000 and len(waves) == 500
    for wave in waves:
        assert len({int(p.ticket[1:]) % 5 for p in wave}) == len(wave)


def _prepared(phase, concurrency: int) -> list[tuple[str, str]]:
    """What ``phase`` runs and prepares, in order, with instant workers."""
    events: list[tuple[str, str]] = []
    lock = threading.Lock()

    def run_one(ticket, start, attempt):
        with lock:
            events.append(("run", ticket.id))
        return TicketOutcome(ticket.id, TicketStatus.COLLECTING, start=start, tip="t")

    def prepare(ticket):
        with lock:
            events.append(("prepare", ticket.id))

    results = schedule(phase, concurrency=concurrency, run_one=run_one, prepare=prepare,
                       integrate=lambda o: finished(o, TicketStatus.INTEGRATED),
                       start_point=lambda t, n: "base", sink=EventCollector())
    assert all(o.status == "integrated" for o in results.values())
    return events


def test_a_ticket_is_prepared_when_its_last_unmet_dependency_starts(tmp_path: Path) -> None:
    # D waits on A and B; B starts once A is integrated, and then D is told of.
    events = _prepared(_phase(tmp_path, "  - {id: A, agent: script, run: x}\n"
                                        "  - {id: B, agent: script, run: x}\n"
                                        "  - {id: D, agent: script, run: x, "
                                        "depends_on: [A, B]}\n"), concurrency=1)
    assert [t for kind, t in events if kind == "run"] == ["A", "B", "D"]
    assert [t for kind, t in events if kind == "prepare"] == ["D"]
    assert events.index(("run", "A")) < events.index(("prepare", "D")) < \
        events.index(("run", "D"))
    # A and B start together: D still waits on the other when each starts (never told);
    # A's other dependents are, at most `concurrency` of them at a time.
    events = _prepared(_phase(tmp_path, "".join(
        f"  - {{id: {t}, agent: script, run: x, depends_on: {deps}}}\n"
        for t, deps in [("A", []), ("B", []), ("D", ["A", "B"]), ("F", ["A"]),
                        ("G", ["A"]), ("H", ["A"])])), concurrency=2)
    assert [t for kind, t in events if kind == "prepare"] == ["F", "G"], events
    assert events.index(("prepare", "F")) < events.index(("run", "F"))


def test_a_ticket_that_waits_for_a_resume_is_not_rerun_and_holds_its_dependents(
        tmp_path: Path) -> None:
    """A worker whose workspace is out of reach (its node away) ends interrupted: retries do
    not run it elsewhere (its work is where it is), what depends on it is skipped as
    interrupted too (a resume runs it), and the rest of the phase goes on."""
    phase = _phase(tmp_path, "  - {id: W, agent: script, run: x, retries: 2}\n"
                             "  - {id: D, agent: script, run: x, depends_on: [W]}\n"
                             "  - {id: E, agent: script, run: x, depends_on: [D]}\n"
                             "  - {id: O, agent: script, run: x}\n")
    runs = []

    def run_one(ticket, start, attempt):
        runs.append(ticket.id)
        if ticket.id == "W":
            return TicketOutcome("W", TicketStatus.FAILED, "its node is away", start=start,
                                 infra=True, interrupted=True, started=1.0)
        return TicketOutcome(ticket.id, TicketStatus.COLLECTING, start=start, tip="t")

    results = schedule(phase, concurrency=2, run_one=run_one,
                       integrate=lambda o: finished(o, TicketStatus.INTEGRATED),
                       start_point=lambda t, n: "base", sink=EventCollector())
    assert sorted(runs) == ["O", "W"]
    assert results["W"].interrupted and results["O"].status == "integrated"
    assert [(results[t].status, results[t].interrupted) for t in "DE"] == [
        ("skipped", True), ("skipped", True)]
    assert "waits for a resume" in results["D"].reason

    # Resumed with W still away (given as done, interrupted): D and E are held again.
    again = schedule(phase, concurrency=2, run_one=run_one, done={"W": results["W"],
                                                                    "O": results["O"]},
                     integrate=lambda o: finished(o, TicketStatus.INTEGRATED),
                     start_point=lambda t, n: "base", sink=EventCollector())
    assert sorted(runs) == ["O", "W"] and again["E"].interrupted
