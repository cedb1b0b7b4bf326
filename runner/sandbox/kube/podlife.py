"""A Pod's life on the cluster: started, waited for until it runs (or said why it cannot),
files sent in, stopped, gone; and what a Pod's status means."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kubernetes.client.exceptions import ApiException

from runner.errors import EngineUnavailable, EnvironmentProblem, WorkspaceAway
from runner.sandbox import SCRATCH_PLACES, Mount, SandboxSpec
from runner.sandbox.cuts import CUT_TRIES, ENGINE_PATIENCE, Say
from runner.sandbox.kube.carried import carry
from runner.sandbox.kube.cluster import Cluster, api_reason
from runner.sandbox.kube.execs import UPLOAD, LocalFailure, StreamLost, chunks
from runner.sandbox.kube.nodes import bound_node, no_node_holds, requests
from runner.sandbox.kube.pods import pod_manifest


START_TIMEOUT = 300       # seconds a Pod may take to be scheduled and start

# A Pod that will not start, by its container's waiting reason: what to tell the user.
UNSTARTABLE = {
    "ErrImagePull": "its image cannot be pulled",
    "ImagePullBackOff": "its image cannot be pulled",
    "ErrImageNeverPull": "its image is not on the node",
    "InvalidImageName": "its image name is invalid",
    "CreateContainerConfigError": "its container cannot be configured",
    "CreateContainerError": "its container cannot be created",
    "RunContainerError": "its container cannot start",
}


def start_pod(cluster: Cluster, spec: SandboxSpec, run_id: str, *, claim: str | None = None,
              command: list[str] | None = None) -> str:
    """A Pod of ``spec`` (over ``claim``), running (one that runs ``command``: ended): its
    name. One that cannot get there is deleted, and EnvironmentProblem says why."""
    spec = carry(cluster, spec)       # its files in its image, where the nodes have that
    manifest = named(pod_manifest(spec, run_id=run_id, command=command, claim=claim))
    cluster.call(cluster.core.create_namespaced_pod, cluster.namespace, manifest)
    pod = str(manifest["metadata"]["name"])
    try:
        wait_running(cluster, pod, spec.image, until="Succeeded" if command else "Running",
                     asked=requests(manifest), claim=claim)
        if not command:
            send_files(cluster, pod, spec.files)
    except BaseException:
        try:
            cluster.delete_pod(pod)
        except (ApiException, EnvironmentProblem):
            pass
        raise
    return pod


def upload(cluster: Cluster, pod: str, path: str, source: Path | bytes, mode: str = "", *,
           say: Say = lambda _line: None) -> None:
    """Write ``source`` (a file here, or bytes) to ``path`` in ``pod``, as its user, sent on
    the exec's stdin (framed by its size: the stream cannot close stdin); chmod ``mode``. A
    stream that broke on the way sends it again, from its start (sandbox/cuts.py)."""
    size = len(source) if isinstance(source, bytes) else source.stat().st_size
    argv = ["sh", "-c", UPLOAD, "upload", str(size), path, mode]
    said = bytearray()
    for number in range(1, CUT_TRIES + 1):
        said.clear()
        try:
            with answering(cluster), _read(source) as data:
                code = cluster.exec(pod, argv, lambda _s, chunk: said.extend(chunk[-4096:]),
                                    stdin=data)
        except StreamLost as e:
            if number == CUT_TRIES:
                raise EnvironmentProblem(f"could not send {path} into Pod {pod}: its stream "
                                         f"broke {CUT_TRIES} times ({e})") from e
            say(f"the stream sending {path} into Pod {pod} broke ({str(e)[:200]}); it is "
                "sent again")
            continue
        if code != 0:
            raise EnvironmentProblem(f"could not send {path} into Pod {pod}: "
                                     f"{said.decode('utf-8', 'replace').strip()[-200:]}")
        return


@contextmanager
def _read(source: Path | bytes) -> Iterator[Iterable[bytes]]:
    if isinstance(source, bytes):
        yield [source]
        return
    with source.open("rb") as data:
        yield chunks(data.read)


def send_files(cluster: Cluster, pod: str, files: Sequence[Mount]) -> None:
    """The files of this machine a sandbox is given (the Claude Code binary), sent into the
    Pod's own copy of their directories: a Pod cannot mount a path of this machine. A file
    given read-only is left readable and runnable, not writable (by the worker, whose own
    copy it is, all the same)."""
    for mount in files:
        upload(cluster, pod, mount.target, mount.source,
               mode="555" if mount.read_only else "755")


def wait_running(cluster: Cluster, pod: str, image: str, until: str = "Running",
                 asked: tuple[float, int] | None = None, claim: str | None = None) -> None:
    """Until the Pod's phase is ``until`` (Running; Succeeded for one that runs a command);
    EnvironmentProblem saying why when it cannot get there: at once for one that no node
    could hold (it ``asked`` for more than any has), WorkspaceAway at once for one over a
    ``claim`` bound to a node that is not Ready, else when START_TIMEOUT is out."""
    deadline = time.monotonic() + START_TIMEOUT
    weighed = asked is None
    while True:
        status = _status(cluster, pod)
        if status is None:
            raise EnvironmentProblem(f"Pod {pod} was deleted while it started")
        if not weighed and (unschedulable := _unschedulable(status)):
            weighed = True          # once: the nodes' allocatable does not change by waiting
            assert asked is not None
            if claim and (node := bound_node(cluster, claim)) and not node_ready(cluster, node):
                raise WorkspaceAway(away(claim, node))
            if why := no_node_holds(cluster, asked):
                raise EnvironmentProblem(f"Pod {pod} cannot be scheduled: {why} (the "
                                         f"scheduler: {unschedulable[:300]}); lower "
                                         "resources.cpus or resources.memory")
        phase, waiting = status.phase, _waiting(status)
        containers = status.container_statuses or []
        ended = next((c for c in containers if c.state and c.state.terminated), None)
        if phase == until and until != "Running":
            return
        if phase == "Running" and ended is not None:     # the gateway's relay, say
            why = ended.state.terminated
            raise EnvironmentProblem(f"Pod {pod}: its container {ended.name} ended as it "
                                     f"started ({why.reason}: {(why.message or '-')[:200]}, "
                                     f"exit {why.exit_code})")
        if phase == until and all(c.state and c.state.running for c in containers):
            return
        if phase in ("Failed", "Succeeded"):
            raise EnvironmentProblem(f"Pod {pod} ended as it started ({phase}: "
                                     f"{status.message or status.reason or '-'})")
        if waiting and waiting.reason in UNSTARTABLE:
            raise EnvironmentProblem(
                f"Pod {pod} cannot start: {UNSTARTABLE[waiting.reason]} ({image}: "
                f"{(waiting.message or waiting.reason)[:300]}); the phase's image must be "
                "one the cluster's nodes can pull")
        if time.monotonic() > deadline:
            raise EnvironmentProblem(f"Pod {pod} did not start in {START_TIMEOUT}s "
                                     f"({_pending_why(status)})")
        time.sleep(min(0.1 + (time.monotonic() - deadline + START_TIMEOUT) / 20, 2.0))


KILL_ALL = ["sh", "-c", "kill -KILL -1 2>/dev/null; true"]   # the shell's own kill: no procps


def stop_pods(cluster: Cluster, pods: list[str]) -> list[str]:
    """End every process in ``pods`` but the keeper (kill -KILL -1 as the Pod's user spares
    the container's pid 1), the Pods at once; those where it could not run."""
    def kill(pod: str) -> bool:
        try:
            return cluster.exec(pod, KILL_ALL, lambda _s, _c: None) == 0
        except Exception:    # noqa: BLE001 - gone, or the server away
            return False

    if not pods:
        return []
    with ThreadPoolExecutor(min(8, len(pods)), thread_name_prefix="stop") as pool:
        return [pod for pod, done in zip(pods, pool.map(kill, pods), strict=True) if not done]


def _status(cluster: Cluster, pod: str) -> Any:
    """A Pod's status; None when it is gone or being deleted."""
    try:
        found = cluster.call(cluster.core.read_namespaced_pod, pod, cluster.namespace,
                             expect=(404,))
    except ApiException:
        return None
    return None if found.metadata.deletion_timestamp is not None else found.status


def node_ready(cluster: Cluster, node: str | None) -> bool:
    """Whether ``node`` reports Ready (True too when runner may not read nodes)."""
    if not node:
        return True
    try:
        found = cluster.call(cluster.core.read_node_status, node, expect=(401, 403, 404))
    except ApiException as e:
        return e.status != 404
    return any(c.type == "Ready" and c.status == "True" for c in found.status.conditions or [])


def away(claim: str, node: str) -> str:
    """What a ticket whose workspace is on a node that stopped answering is told."""
    return (f"its workspace (claim {claim}) is on node {node}, which stopped answering (not "
            "Ready): the ticket waits for that node")


def named(manifest: dict[str, Any]) -> dict[str, Any]:
    """A name of its own: a Pod set aside keeps its name, and the ticket runs again."""
    manifest["metadata"]["name"] += f"-{secrets.token_hex(2)}"
    return manifest


def default_class(storage_class: Any) -> bool:
    annotations = storage_class.metadata.annotations or {}
    return "true" in (annotations.get("storageclass.kubernetes.io/is-default-class"),
                      annotations.get("storageclass.beta.kubernetes.io/is-default-class"))


def wait_gone(cluster: Cluster, pod: str, timeout: float = 60) -> None:
    """Until ``pod`` is gone from the API: a Pod deleted with a grace period is listed until
    its containers ended, which must not write to its claim beside its successor's."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            cluster.call(cluster.core.read_namespaced_pod, pod, cluster.namespace,
                         expect=(404,))
        except ApiException:
            return
        time.sleep(0.5)


def claim_of(pod: Any) -> str | None:
    """The workspace claim a Pod mounts, if any."""
    return next((volume.persistent_volume_claim.claim_name for volume in pod.spec.volumes or []
                 if volume.persistent_volume_claim is not None), None)


def scratch_place(place: str) -> bool:
    return place.split("/")[0] in SCRATCH_PLACES


@contextmanager
def answering(cluster: Cluster) -> Iterator[None]:
    """A stream that broke is StreamLost, or EngineUnavailable when the server is away; a
    failure here, taking its output (this machine's disk), is that failure."""
    from urllib3.exceptions import HTTPError
    from websocket import WebSocketException

    try:
        yield
    except LocalFailure as e:
        raise e.__cause__ or e from None
    except ApiException as e:
        if e.status == 0 and not cluster.answers(ENGINE_PATIENCE):
            raise EngineUnavailable(f"the Kubernetes API server at {cluster.where} stopped "
                                    f"answering ({e.reason})") from e
        raise StreamLost(f"the exec was refused: {api_reason(e)}") from e
    except (HTTPError, OSError, WebSocketException) as e:
        if not cluster.answers(ENGINE_PATIENCE):
            raise EngineUnavailable(f"the Kubernetes API server at {cluster.where} stopped "
                                    f"answering ({e.__class__.__name__})") from e
        raise StreamLost(f"{e.__class__.__name__}: {e}") from e


def refuse_host_paths(spec: SandboxSpec) -> None:
    if spec.shared_cache is not None:
        raise EnvironmentProblem("a Pod cannot mount a path of this machine (gradle."
                                 "shared_cache): leave it out")


def _waiting(status: Any) -> Any:
    for container in [*(status.init_container_statuses or []),
                      *(status.container_statuses or [])]:
        if container.state and container.state.waiting:
            return container.state.waiting
    return None


def _unschedulable(status: Any) -> str:
    """The scheduler's message for a Pod it could not place ("" while none)."""
    for condition in status.conditions or []:
        if condition.type == "PodScheduled" and condition.status == "False" and \
                condition.reason == "Unschedulable":
            return str(condition.message or condition.reason)
    return ""


def _pending_why(status: Any) -> str:
    if status is None:
        return "it is gone"
    for condition in status.conditions or []:
        if condition.status != "True" and condition.message:
            return f"{condition.type}: {condition.message[:300]}"
    waiting = _waiting(status)
    return (waiting.message or waiting.reason) if waiting else (status.phase or "pending")
