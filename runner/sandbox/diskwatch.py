"""The disk budget: a watchdog that measures what a sandbox's writable mounts grew by.

Not a quota: the workspaces live under the host repo's git dir, on whatever filesystem that
is (ext4 here, mounted without project quotas), and the engine's ``--storage-opt size``
covers only a container's own layer, never its bind mounts. So a thread per open sandbox
measures the writable mounts every second or so and stops the sandbox when they grew past
the budget. What it counts is what eats the disk: allocated blocks (so a sparse file counts
what it holds), each inode once (hard links), no symlink followed, as du counts them. On an
engine that shares no disk with the runner the same du runs inside the sandbox, as the
worker, over its volumes (sandbox/docker/remote.py): a directory the worker hides from it, or a du
it kills, makes the measure incomplete, which stops it all the same.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from runner.text import one_line

INTERVAL = 1.0          # seconds between measurements (more when one takes long)
PASS_LIMIT = 30.0       # seconds one measurement may take: a tree beyond it stops the worker
SHARE = 0.2             # of a core one watchdog may spend measuring, at most


@dataclass(frozen=True)
class DiskUsage:
    bytes: int              # allocated bytes of every inode under the roots, each once
    complete: bool = True   # False: the time limit came, or a directory could not be read
    unreadable: str = ""    # the first directory that could not be listed
    failed: str = ""        # why no measure could be taken at all (du could not run)


def disk_usage(roots: Iterable[Path], *, deadline: float | None = None) -> DiskUsage:
    """Measure ``roots`` with du (allocated blocks, each inode once across all the roots, no
    symlink followed, any depth: du walks by directory, never by a path too long to name),
    until ``deadline`` (time.monotonic()) at most. A file removed meanwhile counts as gone;
    a directory that cannot be read makes the result incomplete."""
    present = [str(root) for root in roots if os.path.lexists(root)]
    if not present:
        return DiskUsage(0)
    left = None if deadline is None else deadline - time.monotonic()
    if left is not None and left <= 0:
        return DiskUsage(0, complete=False)
    try:
        proc = subprocess.run(du_command(present), capture_output=True, text=True,
                              errors="surrogateescape", timeout=left)
    except subprocess.TimeoutExpired:
        return DiskUsage(0, complete=False)
    return read_du(proc.stdout, proc.stderr)


def du_command(roots: Iterable[str]) -> list[str]:
    return ["du", "-s", "-c", "-B1", "-P", "--", *roots]


def read_du(stdout: str, stderr: str) -> DiskUsage:
    """What `du -s -c -B1` printed: its total, and the first directory it could not read."""
    lines = stdout.splitlines()
    try:
        total = int(lines[-1].split("\t", 1)[0]) if lines else 0
    except ValueError:           # cut short: no total line
        return DiskUsage(0, complete=False)
    # "du: cannot read directory '…': Permission denied"; a file gone meanwhile is no loss.
    unreadable = next((line.split("'", 1)[-1].rsplit("'", 1)[0]
                       for line in stderr.splitlines()
                       if line and not line.endswith("No such file or directory")), "")
    return DiskUsage(total, complete=not unreadable, unreadable=unreadable)


def read_du_inside(code: int, stdout: str, stderr: str, *, took: float,
                   allowed: float) -> DiskUsage:
    """What du run inside a sandbox (as the worker, under `timeout -s KILL` of ``allowed``
    seconds; it took ``took``) says: killed before its time (a reset of the worker's
    processes reaches it, or the worker) is a pass that could not measure, which the watch
    forgives for a while; killed at its time, a tree beyond the pass limit."""
    if code in (125, 126, 127):
        return DiskUsage(0, complete=False, failed="du could not run in it")
    if code not in (0, 1):
        if took < allowed:
            return DiskUsage(0, complete=False, failed=f"du was killed (exit {code})")
        return DiskUsage(0, complete=False)
    return read_du(stdout, stderr)


# Measures the roots until a deadline (time.monotonic()); None: it cannot now (the sandbox is
# stopped), so this pass counts for nothing.
Measure = Callable[[list[str], "float | None"], "DiskUsage | None"]


def _measure_here(roots: list[str], deadline: float | None) -> DiskUsage:
    return disk_usage([Path(root) for root in roots], deadline=deadline)


def size_text(size: float) -> str:
    """1.04 GiB, 70.2 MiB, 512 KiB: three figures at most, so 4% over 1 GiB shows."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale:
            value = size / scale
            text = f"{value:.{2 if value < 10 else 1 if value < 100 else 0}f}"
            return f"{text.rstrip('0').rstrip('.') if '.' in text else text} {unit}"
    return f"{int(size)} B"


class DiskWatch:
    """A thread that measures ``roots`` (host directory -> the name a worker knows it by)
    while a sandbox is open, and calls ``stop`` with the reason when they grew by more than
    ``budget`` bytes since the watch began.

    After a stop the worker's processes are gone; what runs next is runner's own (collecting
    what it committed), so the ceiling moves to what was measured then plus a quarter of the
    budget: collection may go on, the worker may not grow again unnoticed.
    """

    def __init__(self, roots: Mapping[Path | str, str], *, budget: int,
                 stop: Callable[[str], None], measure: Measure = _measure_here,
                 interval: float = INTERVAL, pass_limit: float = PASS_LIMIT) -> None:
        self.roots = {str(root): name for root, name in roots.items()}
        self.budget, self.stop, self.measure = budget, stop, measure
        self.interval, self.pass_limit = interval, pass_limit
        self.ceiling = budget
        first = measure(list(self.roots), None)
        self.baseline = first.bytes if first else 0    # what it starts with is not its own
        self._unmeasurable = False                     # said once: then growth only
        self._failing_since: float | None = None       # du could not run, since then
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True, name="diskwatch")

    def __enter__(self) -> DiskWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closed.set()
        self._thread.join(timeout=self.interval + 1)   # a long pass ends on its own: daemon

    def check(self) -> float:
        """One measurement (and a stop when over); return how long it took."""
        began = time.monotonic()
        usage = self.measure(list(self.roots), began + self.pass_limit)
        if usage is None:
            return time.monotonic() - began
        if usage.failed:
            self._failed(usage.failed, began)
            return time.monotonic() - began
        self._failing_since = None
        grown = usage.bytes - self.baseline
        if grown > self.ceiling:
            written = size_text(grown) if usage.complete else f"at least {size_text(grown)}"
            self.ceiling = grown + max(1, self.budget // 4)
            self.stop(f"over its disk budget: {written} written, budget "
                      f"{size_text(self.budget)} (resources.disk)")
        elif not usage.complete and not self._unmeasurable:
            self._unmeasurable = True
            self.stop("its disk use cannot be measured: " + (
                f"runner may not read {self._named(usage.unreadable)}" if usage.unreadable
                else f"more files than runner can count in {self.pass_limit:g}s"))
        return time.monotonic() - began

    def _failed(self, why: str, now: float) -> None:
        """A pass that could not measure: a moment's trouble is forgiven, a pass limit's
        worth of them (a worker holding every pid, so nothing more runs) is a stop."""
        self._failing_since = self._failing_since or now
        if now - self._failing_since >= self.pass_limit and not self._unmeasurable:
            self._unmeasurable = True
            self.stop(f"its disk use cannot be measured: {why} for {self.pass_limit:g}s")

    def _named(self, path: str) -> str:
        """The path as the worker names it, on one line and short: the worker chose it."""
        for root, name in self.roots.items():
            if path == root or path.startswith(f"{root}/"):
                path = name + path[len(str(root)):]
                break
        path = one_line(path)
        return path if len(path) <= 120 else f"{path[:60]}…{path[-59:]}"

    def _watch(self) -> None:
        wait = self.interval
        while not self._closed.wait(wait):
            try:
                took = self.check()
            except Exception:        # a watchdog that died would stop enforcing: go on
                took = self.interval
            wait = max(self.interval, took / SHARE - took)
