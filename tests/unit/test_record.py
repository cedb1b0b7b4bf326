"""The run's record on disk: run.json written whole at the run's turns, one line per ticket
outcome in between, read back together; a torn last line (a killed runner's) is skipped."""

from __future__ import annotations

from pathlib import Path

from runner.records.events import TicketChanged, TicketStatus
from runner.records.events import EventCollector
from runner.records.journal import Journal, ticket_states
from runner.records.outcome import TicketOutcome
from runner.records.record import OUTCOME_LOG, RunResult, load_result, record_outcome, write_state


def _result(root: Path) -> RunResult:
    return RunResult(run_id="r", phase="p", base_sha="0" * 40, target="t", run_dir=root,
                     outcomes={}, started=1.0)


def _add(result: RunResult, ticket: str, head: str) -> None:
    result.outcomes[ticket] = TicketOutcome(ticket, TicketStatus.INTEGRATED, tip=head)
    steps_from = len(result.integrated)
    result.integrated.append([ticket, head])
    record_outcome(result, result.outcomes[ticket], steps_from=steps_from)


def test_outcomes_are_appended_then_folded_into_run_json(tmp_path: Path) -> None:
    result = _result(tmp_path)
    write_state(result)
    for i in range(3):
        _add(result, f"T{i}", f"h{i}")
    assert len((tmp_path / OUTCOME_LOG).read_text().splitlines()) == 3
    read = load_result(tmp_path)
    assert list(read.outcomes) == ["T0", "T1", "T2"] and read.outcomes["T1"].tip == "h1"
    assert read.outcomes["T2"].status == TicketStatus.INTEGRATED
    assert read.integrated == [["T0", "h0"], ["T1", "h1"], ["T2", "h2"]]
    write_state(result)                      # whole again: the log is folded in
    assert not (tmp_path / OUTCOME_LOG).exists()
    assert load_result(tmp_path).integrated == read.integrated


def test_a_torn_last_line_is_skipped(tmp_path: Path) -> None:
    result = _result(tmp_path)
    write_state(result)
    _add(result, "T0", "h0")
    with open(tmp_path / OUTCOME_LOG, "a") as log:
        log.write('{"outcome": {"ticket": "T1", "sta')      # killed mid-write
    read = load_result(tmp_path)
    assert list(read.outcomes) == ["T0"] and read.integrated == [["T0", "h0"]]


def test_the_journal_keeps_every_change_and_reads_back_the_latest(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "tickets.jsonl", EventCollector())
    journal.emit(TicketChanged("A", TicketStatus.RUNNING))
    journal.emit(TicketChanged("B", TicketStatus.RUNNING))
    journal.emit(TicketChanged("A", TicketStatus.INTEGRATED, "done"))
    with open(tmp_path / "tickets.jsonl", "a") as f:
        f.write('{"ticket": "B", "stat')
    states = ticket_states(tmp_path / "tickets.jsonl")
    assert states["A"]["status"] == "integrated" and states["A"]["detail"] == "done"
    assert states["B"]["status"] == "running"
    assert len((tmp_path / "tickets.jsonl").read_text().splitlines()) == 4


def test_a_run_left_to_resume_is_exit_3_not_a_failure(tmp_path: Path) -> None:
    """Every ticket it ran integrated, one waits (its node away): not 0, and not 1 (nothing
    failed on its merits): 3, as a run the engine stopped."""
    result = _result(tmp_path)
    _add(result, "A", "1" * 40)
    result.state = "finished"
    assert result.exit_code == 0
    result.state = "interrupted"
    assert result.exit_code == 3
