"""A worker's workspace on the host: its own clone and its own Gradle home.

The clone borrows the host's objects through git alternates: nothing is copied and nothing
is hard-linked, so no inode is shared with the host repo. Inside the container the host's
object store is mounted read-only at HOST_OBJECTS and the alternates file points there,
so a worker can read the history it starts from but cannot change a byte of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from runner.gitops import HostRepo, init_linked_clone, set_alternates
from runner.sandbox import HOST_OBJECTS


@dataclass(frozen=True)
class Workspace:
    clone: Path          # bind-mounted at /workspace
    gradle_home: Path    # bind-mounted at GRADLE_HOME, private to this worker
    branch: str
    start: str           # the commit the worker starts from


def create_workspace(host: HostRepo, *, clone: Path, gradle_home: Path, branch: str,
                     start: str) -> Workspace:
    """Clone ``start`` onto ``branch`` at ``clone``; make an empty private Gradle home."""
    clone.parent.mkdir(parents=True, exist_ok=True)
    gradle_home.mkdir(parents=True, exist_ok=False)
    init_linked_clone(clone, host.objects, branch, start)
    # From here on the clone belongs to the worker: only the container's view must work.
    set_alternates(clone, HOST_OBJECTS)
    return Workspace(clone=clone, gradle_home=gradle_home, branch=branch, start=start)
