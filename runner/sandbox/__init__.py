"""Where a worker's commands run: the Sandbox protocol and what it is built from.

A Backend is an engine runner is connected to (sandbox/engines.py names it, once per
command, and sandbox/backends.py connects it): it opens a SandboxProvider per run and holds
the images. A sandbox is described by a SandboxSpec — the work (a Checkout: which commit on
which branch, what the worker may read), its limits, labels, network and way out — and
opened by a SandboxProvider, which owns the workspace: it makes the clone and the private
Gradle home where its sandboxes can use them, keeps them as long as the run needs them, and
removes or sets them aside when told. The Docker implementation lives in ``sandbox/docker/``:
local.py (this machine's engine) and remote.py (another's), behind engine.py; the Kubernetes
one (a Pod per sandbox) in ``sandbox/kube/``.
Everything else reaches a workspace only through a sandbox's commands (exec).

This is the package's face: what a sandbox is made of (spec.py), a command's output
(output.py) and the protocols (protocols.py), re-exported; the rest of runner imports them
from here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runner.faces import lazy_names

from runner.sandbox.output import (END_MARK, LINE_LIMIT, RESET_FIRST, START_MARK, ExecResult,
                                   OutputHandler, OutputTail, RunCommand, Take, cut_mark, output_of,
                                   output_to_file, read_output, under_timeout)
from runner.sandbox.protocols import Backend, Capacity, Sandbox, SandboxProvider, SandboxRecord
from runner.sandbox.spec import (CLAUDE_BINARY, CLAUDE_DIR, GATEWAY_DIR, GATEWAY_PORT, GRADLE_HOME,
                                 GRADLE_RO_CACHE, KILL_GRACE, RELAY_DIR, RUN_OBJECTS,
                                 SCRATCH_PLACES, STOPPED_EXIT, STRICT_BASH, SUPERVISOR_PROGRAM,
                                 TIMEOUT_EXIT,
                                 WATCHDOG_SLACK, WORKSPACE, Checkout, Durable, Limits, Mount,
                                 SandboxSpec)

__all__ = ["Backend", "CLAUDE_BINARY", "Capacity", "CLAUDE_DIR", "Checkout", "Durable", "END_MARK",
           "ExecResult", "GATEWAY_DIR", "GATEWAY_PORT", "GRADLE_HOME", "GRADLE_RO_CACHE",
           "KILL_GRACE", "LINE_LIMIT", "Limits", "Mount", "OutputHandler", "OutputTail",
           "RELAY_DIR", "RESET_FIRST", "RUN_OBJECTS", "RunCommand", "SCRATCH_PLACES", "START_MARK",
           "STOPPED_EXIT", "STRICT_BASH", "SUPERVISOR_PROGRAM", "Sandbox", "SandboxProvider",
           "SandboxRecord", "SandboxSpec", "TIMEOUT_EXIT", "Take", "WATCHDOG_SLACK", "WORKSPACE",
           "cut_mark", "output_of", "output_to_file", "read_output", "under_timeout"]


# What other packages import from here, by the module that holds it: each loaded when
# first asked for (runner/faces.py).
_EXPORTS = {
    "runner.sandbox.backends": ("connect",),
    "runner.sandbox.engines": ("KUBERNETES", "LOCAL", "Engine", "check_engine", "resolve"),
    "runner.sandbox.images": ("BUILDABLE", "WORKER_DOCKERFILE", "build_images"),
    "runner.sandbox.needs": ("FIND_MISSING", "how_to_add", "needed"),
    "runner.sandbox.recipes": ("Recipe",),
}
__getattr__ = lazy_names(__name__, globals(), _EXPORTS)

if TYPE_CHECKING:
    from runner.sandbox.backends import connect
    from runner.sandbox.engines import KUBERNETES, LOCAL, Engine, check_engine, resolve
    from runner.sandbox.images import BUILDABLE, WORKER_DOCKERFILE, build_images
    from runner.sandbox.needs import FIND_MISSING, how_to_add, needed
    from runner.sandbox.recipes import Recipe
