"""One Pod as a Sandbox: commands through pods/exec under a watchdog, the gateway's tunnel,
its disk measured, and a Pod lost or replaced (over a claim) told apart."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from kubernetes.client.exceptions import ApiException

from runner.errors import EngineUnavailable, EnvironmentProblem, WorkspaceAway
from runner.sandbox import (KILL_GRACE, STOPPED_EXIT, TIMEOUT_EXIT, WATCHDOG_SLACK, ExecResult,
                            OutputHandler, SandboxSpec, Take, output_of, under_timeout)
from runner.sandbox.cuts import (CUT_TRIES, ENGINE_PATIENCE, Sayer, StreamCut, file_through_cuts,
                                 through_cuts)
from runner.sandbox.diskwatch import PASS_LIMIT, DiskUsage, du_command, read_du_inside
from runner.sandbox.kube.cluster import Cluster
from runner.sandbox.kube.execs import PodDuplex, StreamLost, env_on_stdin
from runner.sandbox.kube.podlife import (answering, away, node_ready, start_pod, stop_pods,
                                         upload, wait_gone)
from runner.sandbox.kube.pods import RELAY, pod_user
from runner.sandbox.relay.tunnel import GatewayTunnel


NODE_VERDICT = 90.0    # seconds a broken stream waits for the cluster's word on the Pod's node


class PodRelay:
    """The gateway's relay of a Pod: its container of its own (relay/tunnel.py's Relay)."""

    def __init__(self, cluster: Cluster, pod: str) -> None:
        self.cluster, self.pod, self.where = cluster, pod, f"Pod {pod}"

    def __call__(self, argv: Sequence[str]) -> PodDuplex:
        return PodDuplex(self.cluster.stream(self.pod, argv, container=RELAY, stdin=True))


class KubeSandbox:
    """One Pod, its commands run through pods/exec; over ``claim``, a Pod lost is replaced by
    a new one over the same checkout."""

    commands_via = "pods/exec"
    supervised = False

    def __init__(self, cluster: Cluster, pod: str, spec: SandboxSpec, *,
                 claim: str | None = None, run_id: str = "") -> None:
        self.cluster, self.pod, self.spec = cluster, pod, spec
        self.claim, self.run_id = claim, run_id
        self.name = spec.name
        self.user = ":".join(map(str, pod_user(spec.user)))
        self.restarts = 0         # times its Pod was found gone (over a claim: replaced)
        self.stopped_for = ""
        self._gone = ""           # why its Pod is gone for good ("" while it runs)
        self._away = False        # gone with its node, its claim bound there: it waits
        self._replace_due = False  # its Pod is gone, and the next command starts a new one
        self._stops = 0
        self._last_stop = ""
        self._reset_due = False
        self._tunnel: GatewayTunnel | None = None
        self.say = Sayer()

    def open_gateway(self) -> None:
        """The Pod's relay joined to the ticket's gateway socket here, when it has one."""
        if self.spec.gateway is not None:
            self._tunnel = GatewayTunnel(PodRelay(self.cluster, self.pod),
                                         self.spec.gateway, say=self.say).start()

    def close_gateway(self) -> None:
        if self._tunnel is not None:
            self._tunnel.close()
            self._tunnel = None

    def exec(self, argv: Sequence[str], *, timeout: float,
             on_output: OutputHandler | None = None,
             env: Mapping[str, str] | None = None, repeatable: bool = False) -> ExecResult:
        result = through_cuts(
            lambda _run: output_of(lambda take: self._run(argv, timeout, env, take), on_output),
            argv, repeatable=repeatable, where=f"Pod {self.pod}", say=self.say,
            stop=self._stop_cut)
        if on_output is not None and self._tunnel is not None:   # a worker's command: its
            self._tunnel.tell_trouble(on_output)                  # lines go to the ticket's log
        return result

    def exec_to_file(self, argv: Sequence[str], *, timeout: float, dest: Path,
                     limit: int) -> ExecResult:
        return file_through_cuts(lambda take: self._run(argv, timeout, None, take), dest,
                                 limit, argv, where=f"Pod {self.pod}", say=self.say,
                                 stop=self._stop_cut)

    def upload(self, path: str, source: Path | bytes) -> None:
        upload(self.cluster, self.pod, path, source, say=self.say)

    def _stop_cut(self) -> None:
        """A command whose stream broke, not run again: what it started still runs there."""
        self.restarts += 1
        self.stop_processes()

    def interact(self, argv: Sequence[str]) -> int:
        from runner.sandbox.kube.shell import interact

        if self._gone:
            raise EnvironmentProblem(f"cannot open a shell in Pod {self.pod}: {self._gone}")
        with answering(self.cluster):
            return interact(self.cluster, self.pod, argv)

    def files_holding(self, needle: bytes) -> list[str] | None:
        return None     # looking inside would send the needle in

    def reset(self) -> None:
        """By the next command, as its first step: the keeper is the container's pid 1,
        which a kill(-1) inside never signals."""
        self._reset_due = True

    @property
    def gone(self) -> bool:
        return bool(self._gone)

    def stop_processes(self) -> None:
        if not self._away:            # its node is away: nothing there can be reached
            stop_pods(self.cluster, [self.pod])

    def _run(self, argv: Sequence[str], timeout: float, env: Mapping[str, str] | None,
             take: Take) -> tuple[int, bool, str]:
        if self._replace_due:
            self._replace_pod()
        if self._away:
            raise WorkspaceAway(self._gone)
        if self._gone:
            take(2, f"runner: {self._gone}\n".encode())
            return STOPPED_EXIT, False, ""
        stops = self._stops
        stdin: list[bytes] | None = None
        if env:          # exec takes no environment, and argv travels in its URL
            argv, data = env_on_stdin(env, argv)
            stdin = [data]
        reset_first, self._reset_due = self._reset_due, False
        wrapped = under_timeout(argv, timeout, grace=KILL_GRACE, reset_first=reset_first)
        started = time.monotonic()
        killed = threading.Event()
        timer = threading.Timer(timeout + KILL_GRACE + WATCHDOG_SLACK, self._kill, [killed])
        timer.daemon = True
        timer.start()
        broke = ""
        try:
            with answering(self.cluster):
                code = self.cluster.exec(self.pod, wrapped, take, stdin=stdin,
                                         stop=killed.is_set)
        except (StreamLost, ApiException) as e:
            if not self.cluster.answers(ENGINE_PATIENCE):
                raise EngineUnavailable(f"the Kubernetes API server at {self.cluster.where} "
                                        f"stopped answering ({e})") from e
            broke, code = str(e), STOPPED_EXIT
        finally:
            timer.cancel()
        if self._stops > stops and code == STOPPED_EXIT:
            return code, False, self._last_stop
        # Killed, or its stream cut: by the Pod's end (the watchdog's own stop is no loss)?
        if code == STOPPED_EXIT and not killed.is_set():
            if lost := self._pod_lost() or (self._node_verdict() if broke else None):
                if self._away:
                    raise WorkspaceAway(lost)
                take(2, f"runner: {lost}\n".encode())
                return code, False, lost
            if broke:
                self._reset_due = self._reset_due or reset_first   # it may not have run
                raise StreamCut(broke)
        late = code == STOPPED_EXIT and time.monotonic() - started >= timeout
        return code, killed.is_set() or code == TIMEOUT_EXIT or late, ""

    def _node_verdict(self) -> str | None:
        """After a stream that broke, the API server answering and the Pod still said to run:
        whether its node is lost. While the Pod does not answer an exec either, the cluster
        is asked again, until it says the node is not Ready (its grace, 40 s by default) or
        the Pod answers (a stream that broke on the way, not the node); NODE_VERDICT at most."""
        deadline = time.monotonic() + NODE_VERDICT
        while time.monotonic() < deadline:
            try:
                if self.cluster.exec(self.pod, ["true"], lambda _s, _c: None) == 0:
                    return None
            except Exception:     # noqa: BLE001 - the kubelet away, whatever is said
                pass
            if lost := self._pod_lost():
                return lost
            time.sleep(1)
        return None

    def _pod_lost(self) -> str | None:
        """Whether its Pod is gone (deleted, evicted, ended) or its node stopped answering,
        which is a sandbox that stopped (counted; over a claim a new Pod takes over before
        the next command, else it is never started again): what happened, or None while it
        runs (a command killed in it, or a stream that broke, fails that command only)."""
        try:
            pod = self.cluster.call(self.cluster.core.read_namespaced_pod, self.pod,
                                    self.cluster.namespace, expect=(404,))
        except ApiException:
            pod = None
        if pod is None or pod.metadata.deletion_timestamp is not None:
            lost = f"its Pod {self.pod} was deleted"
        elif pod.status.phase != "Running":
            lost = (f"its Pod {self.pod} stopped ({pod.status.reason or pod.status.phase}: "
                    f"{(pod.status.message or '-')[:200]})")
        elif not node_ready(self.cluster, pod.spec.node_name):
            self.restarts += 1
            if self.claim is not None:   # its files are there: a resume finishes the ticket
                self._away = True
                self._gone = away(self.claim, pod.spec.node_name)
            else:
                self._gone = (f"the node of its Pod {self.pod} ({pod.spec.node_name}) "
                              "stopped answering; its workspace went with it")
            return self._gone
        else:
            return None
        self.restarts += 1
        if self.claim is None:
            self._gone = f"{lost}; its workspace went with it"
            return self._gone
        self._replace_due = True
        return f"{lost}; a new Pod takes over its workspace (claim {self.claim})"

    def _replace_pod(self) -> None:
        """A new Pod over its claim, as Docker starts a stopped container again: the files
        are as the worker left them, nothing of what ran is."""
        self._replace_due = False
        self.close_gateway()
        old = self.pod
        try:
            self.cluster.delete_pod(old)      # one stopped (evicted) still mounts it
        except EngineUnavailable:
            raise
        except (ApiException, EnvironmentProblem):
            pass
        wait_gone(self.cluster, old)
        try:
            self.pod = start_pod(self.cluster, self.spec, self.run_id, claim=self.claim)
            self.open_gateway()
        except (EngineUnavailable, WorkspaceAway):
            raise
        except (ApiException, EnvironmentProblem) as e:
            self._gone = f"no new Pod could take over its workspace (claim {self.claim}): {e}"

    def _kill(self, killed: threading.Event) -> None:
        """The watchdog: the command outlived even `timeout` (the worker can kill that):
        every process in the Pod ends; a Pod where nothing can be run to do it goes."""
        killed.set()
        if stop_pods(self.cluster, [self.pod]):
            if self.claim is not None:       # its files stay: a new Pod takes them over
                self._replace_due = True
            else:
                self._gone = (f"runner deleted its Pod {self.pod}: a command outlived its "
                              "timeout and nothing could be run there to stop it")
            try:
                self.cluster.delete_pod(self.pod)
            except (ApiException, EnvironmentProblem):
                pass

    def stop_for(self, reason: str) -> None:
        """Stop the worker over a limit (the disk watch's thread): every process of its ends,
        its files stay for collection."""
        self.stopped_for = self.stopped_for or reason
        self._last_stop = reason
        self._stops += 1
        stop_pods(self.cluster, [self.pod])

    def measure(self, roots: list[str], deadline: float | None) -> DiskUsage | None:
        """du over ``roots`` inside the Pod, stopped at ``deadline``; None while it is gone."""
        if self._gone:
            return None
        left = PASS_LIMIT if deadline is None else deadline - time.monotonic()
        if left <= 0:
            return DiskUsage(0, complete=False)
        argv = ["timeout", "-s", "KILL", f"{left:.1f}s", *du_command(roots)]
        out, err = io.BytesIO(), io.BytesIO()
        for run in range(1, CUT_TRIES + 1):
            for kept in (out, err):
                kept.seek(0)
                kept.truncate()
            started = time.monotonic()
            try:
                with answering(self.cluster):
                    code = self.cluster.exec(
                        self.pod, argv,
                        lambda stream, chunk: (out if stream == 1 else err).write(chunk))
                break
            except StreamLost:      # a stream that broke on the way: measured again
                if run == CUT_TRIES:
                    return None
            except Exception:    # noqa: BLE001 - gone, or the server away: the commands say
                return None
        return read_du_inside(code, out.getvalue().decode("utf-8", "surrogateescape"),
                              err.getvalue().decode("utf-8", "surrogateescape"),
                              took=time.monotonic() - started, allowed=left)
