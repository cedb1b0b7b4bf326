"""One hardened container as a Sandbox: its commands run under ``timeout -k`` inside, through
the container's supervisor (sandbox/supervisor/) where it has one, through an engine exec
each where it has not (docker-py's exec has no timeout, and closing its stream does not stop
the process), and a host-side watchdog kills the container if even that does not end one.
Its own process is never the worker's: the supervisor, or the keeper (nobody's).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import docker
import docker.errors
from docker.models.containers import Container

from runner.errors import EnvironmentProblem
from runner.host import files_holding
from runner.sandbox import (KILL_GRACE, STOPPED_EXIT, TIMEOUT_EXIT, WATCHDOG_SLACK, ExecResult,
                            OutputHandler, SandboxSpec, output_of, under_timeout)
from runner.sandbox.cuts import (Sayer, StreamCut, file_through_cuts, still_answers,
                                 through_cuts)
from runner.sandbox.docker.client import DOCKER_ERRORS, engine_must_answer
from runner.sandbox.docker.supervised import AttachStream
from runner.sandbox.docker.workspace import Workspace
from runner.sandbox.supervisor import Channel, ChannelLost, NotStarted, as_user

if TYPE_CHECKING:
    from runner.sandbox.relay.tunnel import GatewayTunnel


# The uid:gid of the process that keeps a container up (`sleep infinity` under its init):
# nobody, never the worker's, so a worker can neither signal it nor stop the container, and
# a reset can kill all of the worker's processes at once without restarting it.
KEEPER = "65534:65534"

KEEP_UP = ["sleep", "infinity"]

SUPERVISED = "runner.supervised"   # the label of a container whose first process is the supervisor
READY_TIMEOUT = 30.0     # seconds a started supervisor has to answer its first ping
REATTACH_TIMEOUT = 2.0   # and one attached again after a restart from outside
SIGPIPE_EXIT = 128 + 13  # a command killed writing to a pipe no one reads


def _discard(_stream: int, _chunk: bytes) -> None:
    pass


class DockerSandbox:
    def __init__(self, container: Container, client: docker.DockerClient,
                 spec: SandboxSpec, workspace: Workspace | None = None) -> None:
        self.container, self.api, self.spec = container, client.api, spec
        self.workspace = workspace     # its checkout on the runner's disk (a local engine)
        self.name = spec.name
        self.user = spec.user
        self.restarts = 0
        self.stopped_for = ""
        self._stop_counted = False
        self._stops = 0            # stops of the sandbox's own (disk), so far
        self._last_stop = ""
        self._reset_due = False    # reset() asked: the next command kills the rest first
        self.tunnel: GatewayTunnel | None = None     # the gateway's, on a remote engine
        self.supervised = container.labels.get(SUPERVISED) == "1"
        self._channel: Channel | None = None
        # Whether the container's stdin may still be ours: not once another process held it
        # (a kept container reopened running) or a new attach went unanswered.
        self._attachable = self.supervised
        self._attaching = threading.Lock()     # commands at once attach again once
        self.say = Sayer()

    @property
    def commands_via(self) -> str:
        return "the supervisor" if self._channel is not None else "engine execs"

    def start(self) -> bool:
        """Start the container; with a supervisor, attached first, so that its channel is
        the lead's from its first byte. Whether the supervisor answered (False: it could not
        run; the container has stopped or is stopped here)."""
        if not self.supervised:
            self.container.start()
            return True
        self._close_channel()
        channel = Channel(AttachStream(self.api, self.container.id))
        try:
            self.container.start()
        except BaseException:
            channel.close()
            raise
        answered = channel.ping(READY_TIMEOUT)
        if answered:
            self._channel = channel
        else:
            channel.close()
        self._attachable = answered
        return answered

    def detach(self) -> None:
        """Let go of the supervisor's channel (the container's stdin closes for good): what
        runs in it later runs through engine execs."""
        self._close_channel()
        self._attachable = False

    def _close_channel(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    def _channel_now(self) -> Channel | None:
        """The supervisor's channel for the next command, attached again if a restart from
        outside closed it; None: engine execs."""
        channel = self._channel
        if channel is not None and not channel.lost:     # the common case: no lock
            return channel
        with self._attaching:
            if self._channel is not None and not self._channel.lost:
                return self._channel
            self._close_channel()
            if not self._attachable:
                return None
            channel = Channel(AttachStream(self.api, self.container.id))
            if channel.ping(REATTACH_TIMEOUT):
                self._channel = channel
                return channel
            channel.close()
            self._attachable = False
            return None

    def _as_worker(self, argv: Sequence[str]) -> tuple[list[str], str]:
        """An engine exec's argv and user: in a supervised container, whose user holds the
        supervisor's capabilities, started as root and dropped to the worker with none."""
        if self.supervised:
            return as_user(self.spec.user) + list(argv), "0:0"
        return list(argv), self.spec.user

    def exec(self, argv: Sequence[str], *, timeout: float,
             on_output: OutputHandler | None = None,
             env: Mapping[str, str] | None = None, repeatable: bool = False) -> ExecResult:
        result = through_cuts(
            lambda _run: output_of(lambda take: self._run(argv, timeout, env, take), on_output),
            argv, repeatable=repeatable, where=f"container {self.name}", say=self.say,
            stop=self._stop_cut)
        if on_output is not None and self.tunnel is not None:    # a worker's command: its
            self.tunnel.tell_trouble(on_output)                   # lines go to the ticket's log
        return result

    def exec_to_file(self, argv: Sequence[str], *, timeout: float, dest: Path,
                     limit: int) -> ExecResult:
        return file_through_cuts(lambda take: self._run(argv, timeout, None, take), dest,
                                 limit, argv, where=f"container {self.name}", say=self.say,
                                 stop=self._stop_cut)

    def _stop_cut(self) -> None:
        """A command whose stream broke, not run again: what it started still runs there."""
        self.restarts += 1
        with engine_must_answer():
            if not self._kill_worker_processes():
                self._kill(threading.Event())    # stopped; the next command starts it

    def interact(self, argv: Sequence[str]) -> int:
        from runner.sandbox.terminal import interact

        try:
            with engine_must_answer():
                self._ensure_running()
                command, user = self._as_worker(argv)
                return interact(self.api, self.container.id, command, user=user,
                                workdir=self.spec.workdir, env={})
        except docker.errors.APIError as e:
            raise EnvironmentProblem(f"cannot open a shell in {self.name}: "
                                     f"{e.explanation or e}") from e

    def files_holding(self, needle: bytes) -> list[str] | None:
        if self.workspace is None:      # not on the runner's disk
            return None
        return files_holding(needle, [self.workspace.clone, self.workspace.gradle_home])

    def reset(self) -> None:
        """Done by the next command, as its first step and in its own exec (one exec fewer
        than a kill of its own): its shell kills every other process of the worker's uid at
        once, then becomes the command. Where that cannot be (the worker runs as KEEPER's
        uid), at once."""
        if self._kills_alone():
            self._reset_due = True
            return
        with engine_must_answer():
            self._reset()

    def _kills_alone(self) -> bool:
        """Whether a kill(-1) as the worker spares the container's own process."""
        return self.spec.user.split(":")[0] != KEEPER.split(":")[0]

    def _reset(self) -> None:
        self._note_if_stopped()
        self._stop_counted = False
        if self._kill_worker_processes():
            return
        try:
            self.container.restart(timeout=0)
        except docker.errors.APIError as e:
            raise EnvironmentProblem(f"cannot restart container {self.name}: "
                                     f"{e.explanation or e}") from e

    def _kill_worker_processes(self) -> bool:
        """SIGKILL every process of the worker's uid with one kill(-1): the kernel signals
        them all at once, so no fork slips through. The container's own process belongs to
        KEEPER and stays, so the container and its /tmp live on. False when that cannot run
        (a fork bomb holding every pid, a stopped container): then it is restarted."""
        if not self._kills_alone() or self.stopped():
            return False
        try:
            code = self._stream(["kill", "-KILL", "-1"], None, _discard)
        except (docker.errors.APIError, NotStarted):
            return False
        return code in (0, 1)      # 1: there was nothing left to kill

    def _run(self, argv: Sequence[str], timeout: float, env: Mapping[str, str] | None,
             take: Callable[[int, bytes], None]) -> tuple[int, bool, str]:
        """Exit code, whether it timed out, and why the sandbox stopped it ("" if not)."""
        stops = self._stops
        with engine_must_answer():
            code, timed_out = self._run_under_timeout(argv, timeout, env, take)
        if self._stops > stops and code == STOPPED_EXIT:
            return code, False, self._last_stop
        return code, timed_out, ""

    def _run_under_timeout(self, argv: Sequence[str], timeout: float,
                           env: Mapping[str, str] | None,
                           take: Callable[[int, bytes], None]) -> tuple[int, bool]:
        """Run ``argv`` under `timeout`, feeding (stream, bytes) to ``take``; return the exit
        code and whether it was stopped for taking too long. A stopped container is data
        about the worker (it may have killed its own init), not an error of runner's: it is
        started again so collection can still run."""
        self._ensure_running()
        reset_first, self._reset_due = self._reset_due, False
        wrapped = under_timeout(argv, timeout, grace=KILL_GRACE, reset_first=reset_first)
        started = time.monotonic()
        killed = threading.Event()
        timer = threading.Timer(timeout + KILL_GRACE + WATCHDOG_SLACK, self._kill, [killed])
        timer.daemon = True
        timer.start()
        try:
            code = self._stream(wrapped, env, take)
        except StreamCut:
            self._reset_due = self._reset_due or reset_first     # it may not have run
            raise
        except (docker.errors.APIError, NotStarted):
            if not (killed.is_set() or self.stopped()):
                if reset_first:      # it could not start (a fork bomb): a reset of its own
                    timer.cancel()
                    self._reset()
                    return self._run_under_timeout(argv, timeout, env, take)
                raise
            code = None
        finally:
            timer.cancel()
        code = STOPPED_EXIT if code is None else int(code)
        if code == STOPPED_EXIT:
            # The engine may report the stop a moment later; wait for it, so that the next
            # command starts the container again instead of meeting it half-stopped.
            self._note_if_stopped(settle=10.0 if killed.is_set() else 2.0)
        # 137 is also what an out-of-memory kill looks like: only a late one is a timeout.
        late = code == STOPPED_EXIT and time.monotonic() - started >= timeout
        return code, killed.is_set() or code == TIMEOUT_EXIT or late

    def _stream(self, wrapped: list[str], env: Mapping[str, str] | None,
                take: Callable[[int, bytes], None]) -> int | None:
        """Run ``wrapped`` as the worker; its exit code, None if the sandbox stopped it."""
        channel = self._channel_now()
        if channel is not None:
            try:
                return channel.run(wrapped, cwd=self.spec.workdir, env=env or {}, take=take)
            except ChannelLost:      # the container stopped under it (or its supervisor)
                return None
        argv, user = self._as_worker(wrapped)
        exec_id = self.api.exec_create(self.container.id, argv, workdir=self.spec.workdir,
                                       environment=dict(env or {}), user=user)["Id"]
        try:
            for out, err in self.api.exec_start(exec_id, stream=True, demux=True):
                if out:
                    take(1, out)
                if err:
                    take(2, err)
        except docker.errors.APIError:
            raise
        except (*DOCKER_ERRORS, OSError) as e:     # the stream broke: was it the engine?
            if not still_answers(self.api.ping):
                raise
            raise StreamCut(f"{e.__class__.__name__}: {str(e)[:200]}") from e
        # The engine marks an exec ended before it closes its stream (the docker CLI reads
        # the exit code the same way): one still running had its stream cut, and one that
        # died of SIGPIPE lost the stream it wrote to (the engine closed it, after a cut).
        ran = self.api.exec_inspect(exec_id)
        if ran.get("Running"):
            raise StreamCut("its exec stream ended while the command ran")
        if ran.get("ExitCode") == SIGPIPE_EXIT:
            raise StreamCut("its exec stream ended, and the command with it (SIGPIPE)")
        return ran.get("ExitCode")

    def stopped(self) -> bool:
        """Whether the container is not running, asked of the engine (gone counts)."""
        try:
            self.container.reload()
            return self.container.status != "running"
        except docker.errors.NotFound:
            return True

    def _note_if_stopped(self, settle: float = 0.0) -> bool:
        """Count a stop from outside once (the engine may take a moment to report it)."""
        deadline = time.monotonic() + settle
        while not self.stopped():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)
        if not self._stop_counted:
            self.restarts += 1
            self._stop_counted = True
        return True

    def _ensure_running(self) -> None:
        if self._note_if_stopped():
            self._stop_counted = False
            try:
                self.start()
            except docker.errors.APIError as e:
                raise EnvironmentProblem(f"cannot restart container {self.name}: "
                                         f"{e.explanation or e}") from e

    def stop_for(self, reason: str) -> None:
        """Stop the worker over a limit (the disk watchdog calls this from its thread): kill
        the container, as the timeout watchdog does; the command running returns with the
        reason, and the next one starts the container again (collection)."""
        self.stopped_for = self.stopped_for or reason
        self._last_stop = reason
        self._stops += 1
        self._kill(threading.Event())

    def _kill(self, killed: threading.Event) -> None:
        killed.set()
        self._stop_counted = True     # our own stop, not one from outside (no retry for it)
        try:
            self.container.kill()
        except DOCKER_ERRORS:
            pass
