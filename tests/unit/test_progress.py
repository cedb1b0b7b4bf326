"""The live view's rows, and the plain lines a CI log gets: nothing negative, nothing cut."""

from __future__ import annotations

import io

from rich.console import Console

from runner.records.events import RunStarted, TicketChanged, TicketStatus
from runner.views.progress import LiveSink
from runner.views.tables import Grid, plain_lines, show


def test_a_rerun_adds_its_time_and_never_goes_negative() -> None:
    live = LiveSink(Console(file=io.StringIO()))
    live.emit(RunStarted(run_id="r", phase="p", base_ref="HEAD", base_sha="0" * 40,
                         target="t", run_dir="/x", tickets=("T1",)))
    for status, at in ((TicketStatus.PROVISIONING, 100.0), (TicketStatus.INTEGRATING, 104.0),
                       (TicketStatus.QUEUED, 104.5), (TicketStatus.PROVISIONING, 110.0)):
        live.emit(TicketChanged("T1", status, at=at))
    row = live.rows["T1"]
    assert row.elapsed(110.0) == 4.5           # the first attempt; the wait does not count
    assert row.elapsed(111.5) == 6.0
    live.emit(TicketChanged("T1", TicketStatus.FAILED, "x", at=112.0))
    assert row.elapsed(500.0) == 6.5


def test_plain_lines_keep_every_value_whole_on_one_line() -> None:
    reason = "a reason long enough to be cut at eighty columns, " * 4 + "\nwith a newline"
    grid = Grid("title", ("ticket", "result", "tokens", "why"), optional=frozenset({"tokens"}))
    grid.add("T1", "failed", "0", reason)
    grid.add("T2", "integrated", "0", "")
    out = io.StringIO()
    show(Console(file=out, width=80), grid)
    lines = out.getvalue().splitlines()
    assert lines == plain_lines(grid)
    assert lines[1] == "T1 | result: failed | why: " + reason.replace("\n", " ⏎ ")
    assert lines[2] == "T2 | result: integrated"       # nothing to say is not said


def test_a_terminal_table_leaves_out_columns_with_nothing_in_them() -> None:
    grid = Grid("t", ("ticket", "tokens", "cost"), optional=frozenset({"tokens", "cost"}))
    grid.add("T1", "0", "$0.0000")
    grid.add("T2", "1,200", "$0.0000")
    assert [grid.columns[i] for i in grid.shown_columns()] == ["ticket", "tokens"]
