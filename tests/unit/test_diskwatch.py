"""The disk watchdog's measure and its judgement, on real files in a temp dir."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from runner.sandbox.diskwatch import DiskUsage, DiskWatch, disk_usage, read_du_inside, size_text

MiB = 1 << 20


def _write(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(size))
    return path


def test_it_counts_allocated_bytes_of_every_file_below_the_roots(tmp_path: Path) -> None:
    _write(tmp_path / "ws" / "a" / "b" / "one", 2 * MiB)
    _write(tmp_path / "home" / "two", MiB)
    usage = disk_usage([tmp_path / "ws", tmp_path / "home"])
    assert usage.complete
    assert 3 * MiB <= usage.bytes < 3 * MiB + 256 * 1024   # plus directory blocks


def test_a_sparse_file_counts_what_it_holds_not_its_length(tmp_path: Path) -> None:
    with (tmp_path / "sparse").open("wb") as f:
        f.truncate(1 << 30)
    assert disk_usage([tmp_path]).bytes < MiB


def test_hard_links_count_once(tmp_path: Path) -> None:
    one = _write(tmp_path / "one", 2 * MiB)
    for n in range(5):
        os.link(one, tmp_path / f"link{n}")
    assert disk_usage([tmp_path]).bytes < 3 * MiB


def test_symlinks_are_not_followed(tmp_path: Path) -> None:
    _write(tmp_path / "outside" / "big", 4 * MiB)
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "to-dir").symlink_to(tmp_path / "outside")
    (tmp_path / "ws" / "to-file").symlink_to(tmp_path / "outside" / "big")
    (tmp_path / "root-link").symlink_to(tmp_path / "outside")
    assert disk_usage([tmp_path / "ws"]).bytes < MiB
    assert disk_usage([tmp_path / "root-link"]).bytes < MiB   # a root that is a symlink


def test_any_depth_and_missing_roots(tmp_path: Path) -> None:
    deep = tmp_path / "ws"
    fd = os.open(tmp_path, os.O_RDONLY)
    try:   # deeper than PATH_MAX allows to name in one path: made relative to each parent
        for _ in range(40):
            os.mkdir("d" * 200, dir_fd=fd)
            child = os.open("d" * 200, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = child
    finally:
        os.close(fd)
    usage = disk_usage([deep, tmp_path / "gone"])
    assert usage.bytes == 0 and usage.complete          # roots that are not there
    below = disk_usage([tmp_path])
    # Deeper than a path can name, measured all the same: every level's directory block.
    assert below.complete and below.bytes >= 40 * 4096


def test_the_time_limit_ends_a_measure(tmp_path: Path) -> None:
    for n in range(3):
        _write(tmp_path / f"d{n}" / "f", 1024)
    usage = disk_usage([tmp_path], deadline=time.monotonic() - 1)
    assert not usage.complete and not usage.unreadable


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any directory")
def test_a_directory_it_cannot_read_makes_the_measure_incomplete(tmp_path: Path) -> None:
    hidden = tmp_path / "ws" / "hidden"
    _write(hidden / "big", MiB)
    hidden.chmod(0)
    try:
        usage = disk_usage([tmp_path / "ws"])
        assert not usage.complete and usage.unreadable == str(hidden)
        stopped: list[str] = []
        DiskWatch({tmp_path / "ws": "/workspace"}, budget=64 * MiB,
                  stop=stopped.append).check()
        assert stopped == ["its disk use cannot be measured: runner may not read "
                           "/workspace/hidden"]
    finally:
        hidden.chmod(0o700)


def test_sizes_are_said_in_binary_units() -> None:
    assert [size_text(n) for n in (64 * MiB, int(1.04 * (1 << 30)), int(80.04 * MiB),
                                   int(123.4 * MiB), 1536, 12)] == [
        "64 MiB", "1.04 GiB", "80 MiB", "123 MiB", "1.5 KiB", "12 B"]


def test_the_watch_counts_growth_and_stops_once_per_overrun(tmp_path: Path) -> None:
    ws, home = tmp_path / "ws", tmp_path / "home"
    _write(ws / "checkout", 8 * MiB)           # there before the worker: not its own
    home.mkdir()
    stopped: list[str] = []
    watch = DiskWatch({ws: "/workspace", home: "/gradle-home"}, budget=4 * MiB,
                      stop=stopped.append)
    _write(home / "caches" / "a", 3 * MiB)
    watch.check()
    assert stopped == []
    _write(home / "caches" / "b", 2 * MiB)
    watch.check()
    assert len(stopped) == 1
    assert stopped[0] == "over its disk budget: 5 MiB written, budget 4 MiB (resources.disk)"
    watch.check()                              # collection afterwards: no growth, no stop
    assert len(stopped) == 1
    _write(ws / "more", 2 * MiB)               # growing again past the new ceiling
    watch.check()
    assert len(stopped) == 2


def test_the_watch_thread_stops_a_tree_that_grows_past_the_budget(tmp_path: Path) -> None:
    stopped = threading.Event()
    reasons: list[str] = []

    def stop(reason: str) -> None:
        reasons.append(reason)
        stopped.set()

    with DiskWatch({tmp_path: "/workspace"}, budget=MiB, stop=stop, interval=0.05):
        _write(tmp_path / "junk", 2 * MiB)
        assert stopped.wait(30)
    assert reasons[0] == "over its disk budget: 2 MiB written, budget 1 MiB (resources.disk)"


def test_a_measure_that_cannot_run_is_forgiven_for_a_pass_limit_then_stops(
        tmp_path: Path) -> None:
    """Where du runs in the sandbox, a worker holding every pid keeps it from running: a
    moment of that is no stop, a pass limit of it is, once, saying so."""
    answers = [DiskUsage(0)] + [DiskUsage(0, complete=False, failed="du could not run in it")] * 3
    stopped: list[str] = []
    watch = DiskWatch({"/workspace": "/workspace"}, budget=MiB, stop=stopped.append,
                      measure=lambda roots, deadline: answers.pop(0), pass_limit=0.2)
    watch.check()
    assert stopped == []
    time.sleep(0.3)
    watch.check()
    watch.check()
    assert stopped == ["its disk use cannot be measured: du could not run in it for 0.2s"]


def test_no_measure_while_the_sandbox_is_stopped_counts_for_nothing(tmp_path: Path) -> None:
    stopped: list[str] = []
    watch = DiskWatch({"/workspace": "/workspace"}, budget=MiB, stop=stopped.append,
                      measure=lambda roots, deadline: None, pass_limit=0.01)
    time.sleep(0.05)
    watch.check()
    watch.check()
    assert stopped == [] and watch.baseline == 0


def test_du_killed_inside_before_its_time_is_a_failed_pass_not_a_tree_too_big() -> None:
    """A reset of the worker's processes (runner's own, before it commits) kills a du that
    runs as the worker beside it: that pass could not measure, which the watch forgives;
    only `timeout`'s kill at the pass limit means more files than it can count."""
    early = read_du_inside(137, "", "", took=0.4, allowed=30.0)
    assert early.failed == "du was killed (exit 137)" and not early.complete
    late = read_du_inside(137, "", "", took=30.2, allowed=30.0)
    assert late == DiskUsage(0, complete=False)
    assert read_du_inside(127, "", "", took=0.1, allowed=30.0).failed == \
        "du could not run in it"
    assert read_du_inside(0, "4096\t/workspace\n4096\ttotal\n", "", took=0.1,
                          allowed=30.0) == DiskUsage(4096)
