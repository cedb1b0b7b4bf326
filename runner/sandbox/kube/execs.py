"""A command in a Pod through the API server's pods/exec stream (a websocket, with the
official client's WSClient): output as it comes, stdin when given, and the exit code from the
stream's status channel.

The API servers this was built against speak the v4 channel protocol, which cannot close
stdin: data sent in is framed by its size instead (``head -c SIZE`` reads exactly that much),
see ``upload``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from kubernetes.client import ApiClient, CoreV1Api
from kubernetes.stream import stream
from kubernetes.stream.ws_client import ERROR_CHANNEL, STDERR_CHANNEL, STDOUT_CHANNEL

import websocket

from runner.errors import EnvironmentProblem
from runner.sandbox import Take

POLL = 1.0      # seconds one wait for output may block (then it looks at the clock again)
# The client sets no socket timeout: a server that stalls mid-frame or mid-handshake would
# hold a thread for ever. Output is read only once poll() says it is there, so a command
# that prints nothing for hours is not cut by this.
websocket.setdefaulttimeout(60)


class StreamLost(EnvironmentProblem):
    """The stream ended without the command's status: the Pod, its node or the API server
    went away meanwhile."""


class LocalFailure(Exception):
    """What took the command's output here failed (this machine's disk, say): not the
    stream's fault; ``__cause__`` is the error."""


def open_exec(configuration: Any, namespace: str, pod: str, container: str,
              argv: Sequence[str], *, stdin: bool, tty: bool = False) -> Any:
    """The exec stream (the client's WSClient, binary) of ``argv`` in ``container``; on a
    TTY its output is all on stdout."""
    # A client of its own: the client's stream() swaps a method of the ApiClient it is given
    # while it connects, so a client shared between threads would send their plain calls
    # through the websocket (and theirs through plain HTTP).
    with ApiClient(configuration) as api:
        ws = stream(CoreV1Api(api).connect_get_namespaced_pod_exec, pod, namespace,
                    container=container, command=list(argv), stdin=stdin, stdout=True,
                    stderr=not tty, tty=tty, _preload_content=False, binary=True)
    # The client keeps a copy of all output for the stream's life (a bundle, a worker
    # printing for hours) unless made with capture_all=False, which stream() cannot pass on
    # (the generated method refuses arguments it does not know): the copy goes nowhere.
    ws._all = _Nowhere()
    return ws


def run_in_pod(configuration: Any, namespace: str, pod: str, container: str,
               argv: Sequence[str], take: Take, *, stdin: Iterable[bytes] | None = None,
               stop: Callable[[], bool] = lambda: False) -> int:
    """Run ``argv`` in ``pod``'s ``container``, feeding (stream, bytes) to ``take``; its exit
    code. ``stop`` is asked between waits: True ends the wait (the caller killed the Pod)."""
    ws = open_exec(configuration, namespace, pod, container, argv, stdin=stdin is not None)
    status = b""
    try:
        for chunk in stdin or ():
            ws.write_stdin(chunk)
        while ws.is_open() and not stop():
            ws.update(timeout=POLL)
            status += _drain(ws, take)
        status += _drain(ws, take)
    finally:
        ws.close()
    return exit_code(status)


class PodDuplex:
    """An open exec stream as the gateway's tunnel carries it (relay/tunnel.py's Duplex)."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws

    def fileno(self) -> int:
        return int(self.ws.sock.fileno())

    def receive(self) -> bytes | None:
        self.ws.update(timeout=0)      # every frame there is, those TLS holds decrypted too
        data = self.ws.read_channel(STDOUT_CHANNEL, timeout=0)
        if data:
            return bytes(data)
        return b"" if self.ws.is_open() else None

    def send(self, data: bytes) -> None:
        self.ws.write_stdin(data)

    def close(self) -> None:
        self.ws.close()


class _Nowhere:
    def write(self, data: bytes) -> None:
        pass

    def getvalue(self) -> bytes:
        return b""


def _drain(ws: Any, take: Take) -> bytes:
    """Hand on what came, and return what came on the status channel."""
    for channel in (STDOUT_CHANNEL, STDERR_CHANNEL):
        data = ws.read_channel(channel, timeout=0)
        if data:
            try:
                take(channel, data)
            except Exception as e:
                raise LocalFailure(str(e)) from e
    return ws.read_channel(ERROR_CHANNEL, timeout=0) or b""


def exit_code(status: bytes | str) -> int:
    """The exit code in an exec's status (``{"status": "Success"}``, or a Failure whose
    cause is an ExitCode); StreamLost when there is none."""
    try:
        parsed = json.loads(status) if status else None
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise StreamLost("the exec stream ended without a status")
    if parsed.get("status") == "Success":
        return 0
    for cause in (parsed.get("details") or {}).get("causes") or []:
        if cause.get("reason") == "ExitCode":
            return int(cause.get("message", 1))
    raise StreamLost(str(parsed.get("message") or parsed)[:300])


# $1: the size, $2: the path, $3: its mode ("": private). Whole or not at all: written aside
# (a part of its own: one sent again may meet a run whose stream broke), counted, then moved.
UPLOAD = ('umask 077; part="$2.part-$$"; mkdir -p "${2%/*}" && '
          'timeout 600 head -c "$1" > "$part" && [ "$(wc -c < "$part")" = "$1" ] '
          '&& { [ -z "$3" ] || chmod "$3" "$part"; } && mv "$part" "$2" '
          '|| { rm -f "$part"; exit 1; }')
# A command given variables: they come on stdin (NUL-separated, $1 bytes), never in the exec's
# URL (proxies cut long ones; API audit logs keep them); the command's own stdin is empty.
WITH_ENV = ('while IFS= read -r -d "" kv; do export "$kv"; done < <(head -c "$1"); shift; '
            'exec "$@" </dev/null')


def env_on_stdin(env: Mapping[str, str], argv: Sequence[str]) -> tuple[list[str], bytes]:
    """``argv`` wrapped to take ``env`` from stdin, and the bytes to send."""
    data = b"".join(f"{name}={value}".encode() + b"\0" for name, value in env.items())
    return ["bash", "-c", WITH_ENV, "with-env", str(len(data)), *argv], data
CHUNK = 1 << 20


def chunks(read: Callable[[int], bytes]) -> Iterable[bytes]:
    while chunk := read(CHUNK):
        yield chunk
