"""Remove a tree a worker made, however it made it: the one place runner deletes one (and
the files under a tree that hold a secret's bytes).

Python 3.11's shutil.rmtree recurses once per level, so a directory nested a few thousand
levels deep raises RecursionError; it also gives up on a directory the worker made read-only.
This walks with an explicit stack instead, through directory fds (openat, never a path that
a symlink could redirect), never follows a symlink, and makes a directory it owns writable
before emptying it.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# Directory fds held open at once (the deepest ones); above them a frame reopens its parent
# through "..", checked to be the same directory, so depth costs no file descriptors.
MAX_OPEN = 64
_NOT_A_DIR = (errno.ENOTDIR, errno.ELOOP)


@dataclass
class _Frame:
    name: str                      # its name in its parent
    ident: tuple[int, int]         # (st_dev, st_ino): its parent is reopened only if it matches
    fd: int | None
    subdirs: list[str] = field(default_factory=list)


def remove_tree(path: Path) -> None:
    """Remove ``path`` and everything under it (a symlink or a file: just it). A missing
    path is fine; any other failure raises OSError naming ``path``."""
    try:
        parent = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        _remove_in(parent, path.name)
    except OSError as e:
        raise OSError(e.errno, e.strerror, str(path)) from e
    finally:
        os.close(parent)


def discard_tree(path: Path) -> str | None:
    """Remove ``path`` as remove_tree does; return why it could not be, or None."""
    try:
        remove_tree(path)
    except OSError as e:
        return f"could not remove {path}: {e.strerror or e}"
    return None


def _remove_in(parent_fd: int, name: str) -> None:
    fd = _open_or_unlink(parent_fd, name)
    if fd is None:
        return
    stack = [_enter(name, fd)]
    try:
        while stack:
            top = stack[-1]
            assert top.fd is not None
            if top.subdirs:
                child = top.subdirs.pop()
                if (fd := _open_or_unlink(top.fd, child)) is not None:
                    stack.append(_enter(child, fd))
                    if len(stack) > MAX_OPEN and (far := stack[-MAX_OPEN - 1]).fd is not None:
                        os.close(far.fd)
                        far.fd = None
                continue
            stack.pop()
            upper = stack[-1] if stack else None
            if upper is not None and upper.fd is None:
                upper.fd = _reopen_parent(top.fd, upper.ident)
            os.close(top.fd)
            top.fd = None
            os.rmdir(top.name, dir_fd=upper.fd if upper is not None else parent_fd)
    finally:
        for frame in stack:
            if frame.fd is not None:
                os.close(frame.fd)


def _open_or_unlink(parent_fd: int, name: str) -> int | None:
    """The directory ``name`` opened; None when it was something else (now removed) or
    is gone already."""
    try:
        return _open_dir(parent_fd, name)
    except FileNotFoundError:
        return None
    except OSError as e:
        if e.errno not in _NOT_A_DIR:
            raise
    _unlink(parent_fd, name)             # a file or a link (perhaps swapped in meanwhile)
    return None


def _enter(name: str, fd: int) -> _Frame:
    """A directory's frame: its files and links removed now, its subdirectories listed."""
    info = os.fstat(fd)
    frame = _Frame(name=name, ident=(info.st_dev, info.st_ino), fd=fd)
    with os.scandir(fd) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False) or not _unlink(fd, entry.name):
                frame.subdirs.append(entry.name)
    return frame


def _open_dir(parent_fd: int, name: str) -> int:
    """Open a directory (never through a symlink), writable and searchable by us."""
    try:
        fd = os.open(name, _DIR, dir_fd=parent_fd)
    except PermissionError:
        _chmod_through_path_fd(parent_fd, name)     # a worker's chmod 000: it is ours
        fd = os.open(name, _DIR, dir_fd=parent_fd)
    mode = stat.S_IMODE(os.fstat(fd).st_mode)
    if mode & 0o700 != 0o700:
        try:
            os.fchmod(fd, mode | 0o700)
        except OSError:
            os.close(fd)
            raise
    return fd


def _chmod_through_path_fd(parent_fd: int, name: str) -> None:
    # An O_PATH fd needs no permission on the directory itself; its /proc link names that
    # very inode, so the chmod cannot land anywhere else.
    fd = os.open(name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                 dir_fd=parent_fd)
    try:
        mode = stat.S_IMODE(os.fstat(fd).st_mode)
        os.chmod(f"/proc/self/fd/{fd}", mode | 0o700)
    finally:
        os.close(fd)


def _reopen_parent(child_fd: int, ident: tuple[int, int]) -> int:
    fd = os.open("..", _DIR, dir_fd=child_fd)
    info = os.fstat(fd)
    if (info.st_dev, info.st_ino) != ident:
        os.close(fd)
        raise OSError(errno.ESTALE, "the tree was moved while it was being removed")
    return fd


def _unlink(dir_fd: int, name: str) -> bool:
    """Remove a non-directory; False when it is a directory after all (swapped in)."""
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass
    except IsADirectoryError:
        return False
    return True


def files_holding(needle: bytes, roots: Iterable[Path], chunk: int = 1 << 20) -> list[str]:
    """The files under ``roots`` whose bytes contain ``needle`` (links not followed)."""
    found = []
    for root in roots:
        for folder, _dirs, names in os.walk(root):
            for name in names:
                path = Path(folder, name)
                if not path.is_symlink() and path.is_file() and _holds(path, needle, chunk):
                    found.append(str(path))
    return found


def _holds(path: Path, needle: bytes, chunk: int) -> bool:
    carry = b""
    with path.open("rb") as f:
        while block := f.read(chunk):
            if needle in carry + block:
                return True
            carry = block[-len(needle) + 1:]
    return False
