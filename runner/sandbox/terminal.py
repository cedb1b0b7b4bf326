"""An interactive command in a Docker container, on this process's terminal (`runner shell`):
an exec with a TTY whose socket is joined to the local terminal, kept in raw mode meanwhile,
and told the terminal's size whenever it changes. ``raw`` and ``write_all`` serve a Pod's
shell too (kube/shell.py)."""

from __future__ import annotations

import os
import select
import shutil
import signal
import socket
import sys
import termios
import tty
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

import docker

_PIECE = 1 << 16


def interact(api: docker.APIClient, container: str, argv: Sequence[str], *, user: str,
             workdir: str, env: Mapping[str, str]) -> int:
    """Run ``argv`` in ``container`` on this terminal until it exits; its exit code."""
    exec_id = api.exec_create(container, list(argv), stdin=True, tty=True, user=user,
                              workdir=workdir, environment=dict(env))["Id"]
    stream = api.exec_start(exec_id, socket=True, tty=True)
    sock: socket.socket = getattr(stream, "_sock", stream)

    def resize(*_: object) -> None:
        size = shutil.get_terminal_size()
        try:
            api.exec_resize(exec_id, height=size.lines, width=size.columns)
        except docker.errors.APIError:
            pass       # it ended meanwhile

    previous = signal.signal(signal.SIGWINCH, resize)
    try:
        resize()
        with raw(sys.stdin.fileno()):
            _pump(sock, sys.stdin.fileno(), sys.stdout.fileno())
    finally:
        signal.signal(signal.SIGWINCH, previous)
        sock.close()
    return int(api.exec_inspect(exec_id).get("ExitCode") or 0)


@contextmanager
def raw(fd: int) -> Iterator[None]:
    """The terminal in raw mode (keys go to the sandbox as typed; its TTY echoes)."""
    if not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    tty.setraw(fd, termios.TCSANOW)     # keys typed before now are kept, not flushed
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _pump(sock: socket.socket, stdin: int, stdout: int) -> None:
    """Keys to the container, its output to the terminal, until it closes its end."""
    watched = [sock, stdin]
    while True:
        try:
            ready, _, _ = select.select(watched, [], [])
        except InterruptedError:     # a resize
            continue
        if sock in ready:
            data = sock.recv(_PIECE)
            if not data:
                return
            write_all(stdout, data)
        if stdin in ready:
            keys = os.read(stdin, _PIECE)
            if not keys:             # our input ended: the container's does too
                watched.remove(stdin)
                sock.shutdown(socket.SHUT_WR)
                continue
            sock.sendall(keys)


def write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]
