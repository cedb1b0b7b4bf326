"""A ticket's attempts: every run kept, where its commits are, and the story told."""

from __future__ import annotations

from runner.records.events import TicketStatus
from runner.records.outcome import TicketOutcome, with_attempts

RUN = "refs/runner/r1"


def _conflicted() -> TicketOutcome:
    return TicketOutcome("T1", TicketStatus.FAILED, "conflicted with T2 in a.txt",
                         start="b" * 40, tip="c" * 40, ref=f"{RUN}/T1", started=10.0,
                         ended=14.0, conflict=True, conflicts_with=("T2",),
                         conflict_files=("a.txt",))


def test_an_integrated_rerun_keeps_the_conflict_on_record() -> None:
    rerun = TicketOutcome("T1", TicketStatus.INTEGRATED, start="d" * 40, tip="e" * 40,
                          ref=f"{RUN}/T1", started=20.0, ended=23.0, reruns=1)
    final = with_attempts([_conflicted()], rerun)
    assert final.conflict and final.conflicts_with == ("T2",)
    assert final.reason == "conflicted with T2 in a.txt; rerun 1 from dddddddddddd: integrated"
    assert [a.result for a in final.attempts] == ["conflicted", "integrated"]
    assert [a.ref for a in final.attempts] == [f"{RUN}/attempts/T1/1", f"{RUN}/T1"]
    assert final.seconds == 7.0 and final.started == 10.0     # not the wait between


def test_a_rerun_that_changes_nothing_says_the_change_is_not_on_target() -> None:
    empty = TicketOutcome("T1", TicketStatus.FAILED, "it changed nothing", start="d" * 40,
                          started=20.0, ended=21.0, reruns=1)
    final = with_attempts([_conflicted()], empty)
    assert final.committed and final.tip is None
    assert final.reason.endswith("rerun 1 from dddddddddddd: it changed nothing, so T1's "
                                 f"change is not on the target (attempt 1 kept at "
                                 f"{RUN}/attempts/T1/1)")


def test_one_attempt_keeps_its_own_reason() -> None:
    only = TicketOutcome("T1", TicketStatus.FAILED, "run exited with 2", started=1.0, ended=2.0)
    final = with_attempts([], only)
    assert final.reason == "run exited with 2" and len(final.attempts) == 1
