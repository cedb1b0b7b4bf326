"""remove_tree: depth, read-only directories, symlinks; real files, no mocks."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

from runner.host.trees import MAX_OPEN, discard_tree, remove_tree

NOBODY = 65534


def _deep(root: Path, depth: int) -> None:
    """``depth`` nested directories under ``root`` (made through fds: the path is far longer
    than PATH_MAX), a file at the bottom."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(depth):
        os.mkdir("d", dir_fd=fd)
        below = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = below
    os.close(os.open("bottom", os.O_WRONLY | os.O_CREAT, dir_fd=fd))
    os.close(fd)


def test_removes_a_tree_5000_levels_deep(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    _deep(tree, 5000)
    assert sys.getrecursionlimit() < 5000      # what made shutil.rmtree fail here
    remove_tree(tree)
    assert list(tmp_path.iterdir()) == []


def test_never_follows_a_symlink_out(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep\n")
    tree = tmp_path / "tree"
    (tree / "a" / "b").mkdir(parents=True)
    (tree / "a" / "b" / "f").write_text("x")
    (tree / "a" / "link").symlink_to(outside)
    (tree / "a" / "b" / "file-link").symlink_to(outside / "keep.txt")
    remove_tree(tree)
    assert not tree.exists() and (outside / "keep.txt").read_text() == "keep\n"
    link = tmp_path / "link"
    link.symlink_to(outside)
    remove_tree(link)                   # the link, not what it points at
    assert not link.is_symlink() and (outside / "keep.txt").exists()


def test_wide_and_deep_past_the_open_fds(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    for n in range(3):                 # several deep chains: the walk goes up and down
        (tree / f"c{n}").mkdir()
        _deep(tree / f"c{n}", MAX_OPEN * 3)
    for n in range(200):
        (tree / f"file{n}").write_text("x")
    remove_tree(tree)
    assert not tree.exists()


def test_a_file_or_nothing(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    remove_tree(tmp_path / "f")
    remove_tree(tmp_path / "missing")
    remove_tree(tmp_path / "no" / "parent")
    assert list(tmp_path.iterdir()) == []


def test_read_only_directories_the_worker_made() -> None:
    """As the worker's own uid (not root, whom no mode stops): chmod 000 and 555 dirs go."""
    if os.getuid() != 0:
        pytest.skip("needs root to act as another uid")
    scratch = Path(tempfile.mkdtemp())
    try:
        scratch.chmod(0o755)
        tree = scratch / "tree"
        (tree / "locked" / "inner").mkdir(parents=True)
        (tree / "readonly").mkdir()
        (tree / "locked" / "inner" / "f").write_text("x")
        (tree / "readonly" / "f").write_text("x")
        _deep(tree / "readonly", 50)
        for path in [scratch, *tree.rglob("*"), tree]:
            os.chown(path, NOBODY, NOBODY, follow_symlinks=False)
        (tree / "readonly").chmod(0o555)
        (tree / "locked" / "inner").chmod(0o000)
        (tree / "locked").chmod(0o000)
        pid = os.fork()
        if pid == 0:                   # the child drops to the worker's uid, then removes
            try:
                os.setgid(NOBODY)
                os.setuid(NOBODY)
                os._exit(0 if discard_tree(tree) is None else 1)
            finally:
                os._exit(2)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert not tree.exists()
    finally:
        remove_tree(scratch)


def test_discard_says_why(tmp_path: Path) -> None:
    if os.getuid() == 0:
        pytest.skip("root removes anything")
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    tmp_path.chmod(0o500)             # the parent itself: not ours to change
    try:
        assert "could not remove" in (discard_tree(tree) or "")
    finally:
        tmp_path.chmod(0o700)
