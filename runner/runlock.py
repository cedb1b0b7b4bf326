"""Who drives a run: the runner holding an flock on its run dir's lock file.

A recorded pid cannot tell: a runner in a container (compose.yaml) has a pid of its own pid
namespace, which on the host may be any other process. An flock is released by the kernel
when its holder dies, however it dies, and works between the host and containers that
share the file (one kernel).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from runner.errors import InputError

LOCK_FILE = "runner.lock"


@contextmanager
def driving(run_dir: Path) -> Iterator[None]:
    """Hold the run for the duration; InputError when another runner holds it."""
    fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise InputError(f"run {run_dir.name} is still running (another runner holds "
                         f"{run_dir / LOCK_FILE}); stop it first (Ctrl-C or SIGTERM), "
                         "then resume") from None
    try:
        yield
    finally:
        os.close(fd)          # closing releases the lock


def is_driven(run_dir: Path) -> bool:
    """Whether a live runner holds the run (a run whose runner died is not)."""
    try:
        fd = os.open(run_dir / LOCK_FILE, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
