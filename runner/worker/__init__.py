"""One ticket's life: the run's shared context and gateway, the worker (workspace -> sandbox ->
agent -> checks -> collect), gates, review, authorship, the worker's gateway variables."""

from __future__ import annotations

from typing import TYPE_CHECKING

from runner.faces import lazy_names


# What other packages import from here, by the module that holds it: each loaded when
# first asked for (runner/faces.py).
_EXPORTS = {
    "runner.worker.authorship": ("Identity", "read_authorship", "trailer_args",
                                 "without_runner_trailers"),
    "runner.worker.checks": ("run_checks",),
    "runner.worker.collecting": ("CollectError", "collect", "commit_leftovers"),
    "runner.worker.context": ("RunContext", "gateway_for", "mirrors_for"),
    "runner.worker.gatewayenv": ("PLACEHOLDER_KEY",),
    "runner.worker.lifecycle": ("open_sandbox", "output_handler", "run_ticket", "sandbox_spec"),
}
__getattr__ = lazy_names(__name__, globals(), _EXPORTS)

if TYPE_CHECKING:
    from runner.worker.authorship import (Identity, read_authorship, trailer_args,
                                          without_runner_trailers)
    from runner.worker.checks import run_checks
    from runner.worker.collecting import CollectError, collect, commit_leftovers
    from runner.worker.context import RunContext, gateway_for, mirrors_for
    from runner.worker.gatewayenv import PLACEHOLDER_KEY
    from runner.worker.lifecycle import open_sandbox, output_handler, run_ticket, sandbox_spec
