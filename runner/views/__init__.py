"""What people read: live progress, tables, status, the postmortem and HTML report, the
timeline, and the verbs over one ticket."""

from __future__ import annotations

from typing import TYPE_CHECKING

from runner.faces import lazy_names


# What other packages import from here, by the module that holds it: each loaded when
# first asked for (runner/faces.py).
_EXPORTS = {
    "runner.views.applying": ("apply_attempt",),
    "runner.views.diffs": ("diff_lines", "paged", "wants_colour"),
    "runner.views.following": ("follow", "ticket_ended"),
    "runner.views.picking": ("LATEST", "asked_of", "pick", "pick_run", "ticket_ids"),
    "runner.views.progress": ("PlainSink",),
    "runner.views.report": ("write_report",),
    "runner.views.showrun": ("show_run",),
    "runner.views.stats": ("stats_table",),
    "runner.views.status": ("list_runs", "run_table", "runs"),
    "runner.views.tables": ("Cell", "Grid", "show"),
    "runner.views.ticketshell": ("ticket_shell",),
    "runner.views.ticketview": ("size", "ticket_story"),
}
__getattr__ = lazy_names(__name__, globals(), _EXPORTS)

if TYPE_CHECKING:
    from runner.views.applying import apply_attempt
    from runner.views.diffs import diff_lines, paged, wants_colour
    from runner.views.following import follow, ticket_ended
    from runner.views.picking import LATEST, asked_of, pick, pick_run, ticket_ids
    from runner.views.progress import PlainSink
    from runner.views.report import write_report
    from runner.views.showrun import show_run
    from runner.views.stats import stats_table
    from runner.views.status import list_runs, run_table, runs
    from runner.views.tables import Cell, Grid, show
    from runner.views.ticketshell import ticket_shell
    from runner.views.ticketview import size, ticket_story
