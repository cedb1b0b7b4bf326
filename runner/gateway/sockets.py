"""The gateway's unix sockets, bound and reached by path however deep the run's directory
lies: a path that does not fit in sun_path goes through /proc/self/fd of its directory."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path

SUN_PATH = 108           # bytes a unix socket's path may have, with its NUL


def _at(path: Path, use: Callable[[str], None]) -> None:
    """``use`` given a name for ``path`` that fits in sun_path."""
    if len(os.fsencode(str(path))) < SUN_PATH:
        use(str(path))
        return
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        use(f"/proc/self/fd/{fd}/{path.name}")
    finally:
        os.close(fd)


def bind_unix(directory: Path, name: str) -> socket.socket:
    """A listening unix socket ``directory/name``, mode 0o666, non-blocking."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        _at(directory / name, sock.bind)
        # The container's forwarder runs as another uid; the 0o700 run dir keeps host
        # users out.
        os.chmod(directory / name, 0o666)
        sock.listen(128)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def connect_unix(path: Path, timeout: float) -> socket.socket:
    """A connection to the unix socket at ``path``."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        _at(path, sock.connect)
    except BaseException:
        sock.close()
        raise
    return sock
