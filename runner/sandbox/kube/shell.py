"""`runner shell` in a Pod: a pods/exec stream with a TTY, joined to this process's terminal
(kept in raw mode meanwhile) and told the terminal's size, on the stream's resize channel,
whenever it changes."""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from kubernetes.stream.ws_client import ERROR_CHANNEL, RESIZE_CHANNEL, STDOUT_CHANNEL

from runner.sandbox.kube.execs import exit_code
from runner.sandbox.terminal import raw, write_all

if TYPE_CHECKING:
    from runner.sandbox.kube.cluster import Cluster

WAIT = 0.05        # seconds one wait for keys or output may take (then the stream is read)
_PIECE = 1 << 16


def interact(cluster: Cluster, pod: str, argv: Sequence[str]) -> int:
    """Run ``argv`` in ``pod`` on this terminal until it exits; its exit code."""
    ws = cluster.stream(pod, argv, stdin=True, tty=True)
    resized = [True]        # the size is sent by the loop: a handler writing mid-frame would
                            # tear the frame it interrupted

    def note_resize(*_: object) -> None:
        resized[0] = True

    previous = signal.signal(signal.SIGWINCH, note_resize)
    try:
        with raw(sys.stdin.fileno()):
            status = _pump(ws, sys.stdin.fileno(), sys.stdout.fileno(), resized)
    finally:
        signal.signal(signal.SIGWINCH, previous)
        ws.close()
    return exit_code(status)


def _pump(ws: Any, stdin: int, stdout: int, resized: list[bool]) -> bytes:
    """Keys to the Pod, its output to the terminal, until the stream ends; its status."""
    status = b""
    reading = True
    while ws.is_open():
        if resized[0]:
            resized[0] = False
            size = shutil.get_terminal_size()
            ws.write_channel(RESIZE_CHANNEL, json.dumps(
                {"Width": size.columns, "Height": size.lines}).encode())
        watched = [stdin] if reading else []
        ready, _, _ = select.select(watched, [], [], 0 if not reading else WAIT)
        if ready:
            keys = os.read(stdin, _PIECE)
            if keys:
                ws.write_stdin(keys)
            else:            # our input ended; the stream cannot close the Pod's (v4)
                reading = False
        ws.update(timeout=0 if reading else WAIT)
        if out := ws.read_channel(STDOUT_CHANNEL, timeout=0):
            write_all(stdout, out)
        status += ws.read_channel(ERROR_CHANNEL, timeout=0) or b""
    if out := ws.read_channel(STDOUT_CHANNEL, timeout=0):
        write_all(stdout, out)
    return status + (ws.read_channel(ERROR_CHANNEL, timeout=0) or b"")
