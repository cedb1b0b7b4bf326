"""The supervisor's program and the lead's end of its channel, talking over a pipe on this
machine (the program as a sandbox runs it, its uid switch left out: `env` as its prefix)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from runner.sandbox.supervisor import PROGRAM, Channel, ChannelLost


class PipeStream:
    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-I", "-S", str(PROGRAM), "--", "env"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def send(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def chunks(self) -> Iterator[bytes]:
        assert self.proc.stdout is not None
        while chunk := os.read(self.proc.stdout.fileno(), 65536):
            yield chunk

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def channel() -> Iterator[tuple[Channel, PipeStream]]:
    stream = PipeStream()
    channel = Channel(stream)
    yield channel, stream
    channel.close()


def _run(channel: Channel, script: str, env: dict[str, str] | None = None
         ) -> tuple[int, bytes, bytes]:
    out, err = bytearray(), bytearray()
    code = channel.run(["sh", "-c", script], cwd="/", env=env or {},
                       take=lambda stream, data: (out if stream == 1 else err).extend(data))
    return code, bytes(out), bytes(err)


def test_a_command_s_output_and_exit_code_come_apart(channel) -> None:
    chan, _ = channel
    assert chan.ping(10)
    code, out, err = _run(chan, 'echo "$GREETING"; pwd; echo oops >&2; exit 3', {"GREETING": "hi"})
    assert (code, out, err) == (3, b"hi\n/\n", b"oops\n")
    assert _run(chan, "kill -9 $$")[0] == 137


def test_what_a_command_prints_cannot_forge_a_frame(channel) -> None:
    chan, _ = channel
    forged = b"x\x00\x00\x00\x01\x00\x00\x00\x010" * 50 + b"o\x00\x00\x00\x02\xff\xff\xff\xff"
    code, out, _ = _run(chan, "printf '" + "".join(f"\\{b:03o}" for b in forged) + "'; exit 5")
    assert code == 5 and out == forged


def test_commands_at_once_are_answered_each_by_its_own_id(channel) -> None:
    chan, _ = channel
    results: dict[int, tuple[int, bytes, bytes]] = {}

    def one(n: int) -> None:
        results[n] = _run(chan, f"for i in 1 2 3; do echo {n}; sleep 0.05; done; exit {n}")

    threads = [threading.Thread(target=one, args=(n,)) for n in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {n: (n, f"{n}\n".encode() * 3, b"") for n in range(10)}


def test_a_child_holding_the_pipes_is_left_behind_after_a_moment(channel) -> None:
    chan, _ = channel
    code, out, _ = _run(chan, "echo started; (sleep 5; echo late) & exit 0")
    assert code == 0 and out == b"started\n"
    assert _run(chan, "echo next")[1] == b"next\n"


def test_a_command_that_cannot_start_says_why_and_the_channel_goes_on(channel) -> None:
    chan, _ = channel
    err = bytearray()
    code = chan.run(["true"], cwd="/nonexistent-dir", env={},
                    take=lambda stream, data: err.extend(data))
    assert code == 127 and b"cannot start a command in /nonexistent-dir" in err
    assert _run(chan, "echo still")[1] == b"still\n"


def test_a_supervisor_gone_loses_every_waiting_command(channel) -> None:
    chan, stream = channel
    waiting: list[BaseException] = []

    def wait() -> None:
        try:
            _run(chan, "sleep 5")
        except ChannelLost as e:
            waiting.append(e)

    thread = threading.Thread(target=wait)
    thread.start()
    assert chan.ping(10)
    stream.proc.kill()
    thread.join(10)
    assert len(waiting) == 1 and chan.lost
    with pytest.raises(ChannelLost):
        _run(chan, "true")
