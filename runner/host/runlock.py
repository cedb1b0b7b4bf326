"""Who drives a run: the runner holding an flock on its run dir's lock file.

A recorded pid cannot tell: a runner in a container (compose.yaml) has a pid of its own pid
namespace, which on the host may be any other process. An flock is released by the kernel
when its holder dies, however it dies, and works between the host and containers that
share the file on one kernel (Linux; not across Docker Desktop's VM boundary, nor NFS).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from runner.errors import InputError

LOCK_FILE = "runner.lock"


def _lock_exclusive(fd: int) -> None:
    # Retried: `runner status` holds a shared lock for an instant while it looks. (tenacity
    # imported here: `runner status` itself only looks.)
    from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

    for attempt in Retrying(retry=retry_if_exception_type(BlockingIOError),
                            stop=stop_after_delay(2), wait=wait_fixed(0.05), reraise=True):
        with attempt:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


@contextmanager
def driving(run_dir: Path) -> Iterator[None]:
    """Hold the run for the duration; InputError when another runner holds it."""
    # 0644: others may look (a shared lock needs only a read-only descriptor).
    fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        _lock_exclusive(fd)
    except BlockingIOError:
        os.close(fd)
        raise InputError(f"run {run_dir.name} is still running (another runner holds "
                         f"{run_dir / LOCK_FILE}); stop it first (Ctrl-C or SIGTERM)") from None
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
    except PermissionError:   # someone else's run that we may not look into: assume live
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
