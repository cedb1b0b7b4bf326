"""Paths as the Docker engine sees them, for a runner that itself runs in a container.

The engine resolves a bind mount's source on its own host, not in runner's container. So
every directory runner mounts into a worker must exist at the same absolute path on the host:
compose.yaml mounts the repo at its own path, and runner keeps its scratch directories there
too. The runner image sets RUNNER_IN_CONTAINER=1.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

IN_CONTAINER_ENV = "RUNNER_IN_CONTAINER"
PR_SET_DUMPABLE = 4        # from <linux/prctl.h>
SAME_PATH_HINT = ("runner runs in a container, and the Docker engine looks for bind-mount "
                  "sources on the host: mount the repo at its own absolute path "
                  "(-v \"$PWD:$PWD\" -w \"$PWD\", as compose.yaml does)")


def in_container() -> bool:
    return os.environ.get(IN_CONTAINER_ENV) == "1"


def scratch_parent(shared: Path) -> Path | None:
    """Where throwaway directories that workers mount go: the system temp dir (None) on a
    host; in a container, ``shared``, a directory on the mount the host also sees."""
    if not in_container():
        return None
    shared.mkdir(parents=True, exist_ok=True)
    return shared


def explain_mount_error(message: str) -> str:
    """The engine's error, plus what to do when the cause is a path the host cannot see."""
    if in_container() and "bind source path does not exist" in message:
        return f"{message}; {SAME_PATH_HINT}"
    return message


def forbid_inspection() -> None:
    """Keep other processes of runner's uid out of runner: no ptrace, no reading its
    environment (the API key) through /proc. In a container runner runs as the repo owner's
    uid while holding the Docker socket's group, which that uid may not hold on the host."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE, 0) failed")
