"""A worker's workspace on the runner's disk, as the local Docker provider makes it: its own
clone and its own Gradle home.

The clone borrows the run's object store (host/objectstore.py: base's history and the run's
integrated work, nothing else of the host repo) through git alternates: no object is copied
into the clone and nothing is hard-linked. Inside the container the store is mounted
read-only at RUN_OBJECTS and the alternates file points there, so a worker can read the
history it starts from but cannot change a byte of it.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path

from runner.host import RunObjects, init_linked_clone, set_alternates
from runner.sandbox import RUN_OBJECTS


@dataclass(frozen=True)
class Workspace:
    clone: Path          # bind-mounted at /workspace
    gradle_home: Path    # bind-mounted at GRADLE_HOME, private to this worker
    branch: str
    start: str           # the commit the worker starts from


def create_workspace(objects: RunObjects, *, clone: Path, gradle_home: Path, branch: str,
                     start: str, home_files: tuple[tuple[str, str], ...] = (),
                     home_copies: tuple[tuple[str, Path], ...] = ()) -> Workspace:
    """Clone ``start`` onto ``branch`` at ``clone``; make a private Gradle home, empty but
    for ``home_files`` (written now, while nothing of the worker's is there). With
    ``start`` "" (not known yet) the clone's directory is made empty: fill_workspace clones
    into it later."""
    if start:
        objects.ensure(start)     # a start the run may not use refused before anything
    clone.parent.mkdir(parents=True, exist_ok=True)
    gradle_home.mkdir(parents=True, exist_ok=False)
    for name, text in home_files:
        (gradle_home / name).parent.mkdir(parents=True, exist_ok=True)
        (gradle_home / name).write_text(text)
    for name, source in home_copies:       # a copy: the store's file is never the worker's
        (gradle_home / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, gradle_home / name)
    made = Workspace(clone=clone, gradle_home=gradle_home, branch=branch, start="")
    if not start:
        clone.mkdir()
        return made
    return _clone_into(objects, made, start)


def fill_workspace(objects: RunObjects, workspace: Workspace, start: str) -> Workspace:
    """Clone ``start`` into the workspace's clone directory, which nothing has written."""
    objects.ensure(start)
    return _clone_into(objects, workspace, start)


def _clone_into(objects: RunObjects, workspace: Workspace, start: str) -> Workspace:
    init_linked_clone(workspace.clone, objects.objects, workspace.branch, start)
    # From here on the clone belongs to the worker: only the container's view must work.
    set_alternates(workspace.clone, RUN_OBJECTS)
    return replace(workspace, start=start)
