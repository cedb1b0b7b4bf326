"""The lead's run: refs, images, scheduling, integration, phase checks, resume, the dry-run
plan."""

from __future__ import annotations

from typing import TYPE_CHECKING

from runner.faces import lazy_names


# What other packages import from here, by the module that holds it: each loaded when
# first asked for (runner/faces.py).
_EXPORTS = {
    "runner.run.lead": ("resume_run", "run_context", "run_phase", "worker_image"),
    "runner.run.options": ("RunOptions",),
    "runner.run.phasegate": ("PHASE_CHECKS",),
    "runner.run.plan": ("describe_plan",),
    "runner.run.salvage": ("salvage_workspaces",),
}
__getattr__ = lazy_names(__name__, globals(), _EXPORTS)

if TYPE_CHECKING:
    from runner.run.lead import resume_run, run_context, run_phase, worker_image
    from runner.run.options import RunOptions
    from runner.run.phasegate import PHASE_CHECKS
    from runner.run.plan import describe_plan
    from runner.run.salvage import salvage_workspaces
