"""Kubernetes as a Backend: a Pod per sandbox, through the official ``kubernetes`` client.

``--engine kubernetes`` uses the current context of KUBECONFIG (or ~/.kube/config), or the
cluster runner itself runs in; ``kubernetes:CONTEXT`` names a context. The lead, the run's
object store and the API key stay where runner runs: a worker's clone goes into its Pod as a
git bundle on an exec stream's stdin, and its work comes out as the bundle collect already
makes, on the stream's stdout. What runner makes there carries the label ``runner.run``: the
run's Pods and one NetworkPolicy that denies all traffic in and out of them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from runner.errors import EngineUnavailable, EnvironmentProblem
from runner.events import EventSink, Notice
from runner.sandbox import SandboxProvider, SandboxRecord, Take
from runner.sandbox.engines import Engine
from runner.sandbox.kube.pods import CONTAINER, RUN, spec_labels

if TYPE_CHECKING:
    from runner.sandbox.recipes import Recipe

API_TIMEOUT = 30          # seconds one API call may take
IN_CLUSTER_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
T = TypeVar("T")


@dataclass
class Cluster:
    """The API server runner talks to, and the namespace its objects go in."""

    api: Any                 # kubernetes.client.ApiClient
    namespace: str
    where: str               # the server's address, for messages

    def __post_init__(self) -> None:
        from kubernetes import client

        self.core = client.CoreV1Api(self.api)
        self.net = client.NetworkingV1Api(self.api)
        self.storage = client.StorageV1Api(self.api)
        self.versions = client.VersionApi(self.api)

    def call(self, method: Callable[..., T], *args: Any, expect: tuple[int, ...] = (),
             **kwargs: Any) -> T:
        """An API call with a time limit. A server that does not answer is EngineUnavailable;
        an error it answers with is the ApiException when its status is one of ``expect``
        (the caller handles it), else EnvironmentProblem saying what the cluster refused."""
        from kubernetes.client.exceptions import ApiException

        try:
            with must_answer(self.where):
                return method(*args, _request_timeout=API_TIMEOUT, **kwargs)
        except ApiException as e:
            if e.status in expect:
                raise
            what = getattr(method, "__name__", "a call").replace("_", " ")
            raise EnvironmentProblem(f"the Kubernetes API refused {what} ({e.status}: "
                                     f"{api_reason(e)})") from e

    def delete_pod(self, pod: str) -> None:
        """Delete ``pod`` at once (no grace: the API forgets it now, and its node kills what
        is left in it); ApiException(404) when it is gone already."""
        self.call(self.core.delete_namespaced_pod, pod, self.namespace, grace_period_seconds=0,
                  expect=(404,))

    def exec(self, pod: str, argv: Sequence[str], take: Take, *,
             stdin: Iterable[bytes] | None = None,
             stop: Callable[[], bool] = lambda: False, container: str = CONTAINER) -> int:
        """Run ``argv`` in ``pod`` through pods/exec (sandbox/kube/execs.py); its exit code."""
        from runner.sandbox.kube.execs import run_in_pod

        return run_in_pod(self.api.configuration, self.namespace, pod, container, argv, take,
                          stdin=stdin, stop=stop)

    def stream(self, pod: str, argv: Sequence[str], *, container: str = CONTAINER,
               stdin: bool = False, tty: bool = False) -> Any:
        """The open stream of an exec (the client's WSClient), for a caller that carries
        bytes both ways itself (kube/tunnel.py, kube/shell.py)."""
        from runner.sandbox.kube.execs import open_exec

        return open_exec(self.api.configuration, self.namespace, pod, container, argv,
                         stdin=stdin, tty=tty)

    def answers(self) -> bool:
        try:
            self.versions.get_code(_request_timeout=5)
            return True
        except Exception:     # noqa: BLE001 - any failure to answer is "no"
            return False


@contextmanager
def must_answer(where: str) -> Iterator[None]:
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    try:
        yield
    except ApiException as e:
        if e.status:          # the server answered, with an error
            raise
        raise EngineUnavailable(f"the Kubernetes API server at {where} stopped answering "
                                f"({e.reason})") from e
    except (HTTPError, OSError) as e:
        raise EngineUnavailable(f"the Kubernetes API server at {where} stopped answering "
                                f"({e.__class__.__name__})") from e


def api_reason(error: Exception) -> str:
    """The message an API error carries (its body's), on one line."""
    import json

    body = getattr(error, "body", None)
    try:
        message = json.loads(body).get("message") if body else None
    except (ValueError, AttributeError):
        message = None
    return " ".join(str(message or getattr(error, "reason", None) or error).split())[:300]


def load_cluster(context: str | None) -> Cluster:
    """The cluster of ``context`` (None: the kubeconfig's current one, or the cluster runner
    runs in when there is no kubeconfig)."""
    from kubernetes import client, config

    kubeconfig = os.environ.get("KUBECONFIG") or str(Path("~/.kube/config").expanduser())
    try:
        if os.environ.get("KUBECONFIG") or Path(kubeconfig).is_file() or context:
            # Named, not left to the client: it reads KUBECONFIG once, when it is imported.
            api = config.new_client_from_config(config_file=kubeconfig, context=context)
            contexts, active = config.list_kube_config_contexts(config_file=kubeconfig)
            chosen = next((c for c in contexts if c["name"] == context), active) or {}
            namespace = (chosen.get("context") or {}).get("namespace") or "default"
        elif os.environ.get("KUBERNETES_SERVICE_HOST"):
            config.load_incluster_config()
            api = client.ApiClient()
            namespace = IN_CLUSTER_NAMESPACE.read_text().strip()
        else:
            raise EngineUnavailable("no cluster to use: set KUBECONFIG or write "
                                    "~/.kube/config, or run runner inside the cluster")
    except (config.ConfigException, OSError, ValueError) as e:
        raise EngineUnavailable(f"kubeconfig ({kubeconfig}): {str(e).splitlines()[0]}; "
                                "check it names the context and its cluster") from e
    api.configuration.retries = 1     # urllib3's default 3 would make a dead server minutes
    if not api.configuration.verify_ssl:
        # The kubeconfig says insecure-skip-tls-verify on purpose (a test cluster): urllib3
        # would say so on every call, thousands of lines of a run's log.
        import warnings

        from urllib3.exceptions import InsecureRequestWarning

        warnings.filterwarnings("ignore", category=InsecureRequestWarning)
    return Cluster(api, namespace, api.configuration.host)


def normalized_image(reference: str) -> str:
    """An image reference as a node lists it: with its registry and tag
    (``runner-worker:latest`` is ``docker.io/library/runner-worker:latest``)."""
    name, at, digest = reference.partition("@")
    first, slash, _ = name.partition("/")
    if not slash or not ("." in first or ":" in first or first == "localhost"):
        name = f"docker.io/{name if slash else 'library/' + name}"
    if not at and ":" not in name.rpartition("/")[2]:
        name += ":latest"
    return name + at + digest


class KubeBackend:
    shares_disk = False

    def __init__(self, cluster: Cluster, engine: Engine) -> None:
        self.cluster, self.engine = cluster, engine

    @classmethod
    def connect(cls, engine: Engine) -> KubeBackend:
        cluster = load_cluster(engine.context)
        if not cluster.answers():
            raise EngineUnavailable(f"the Kubernetes API server at {cluster.where} does not "
                                    "answer; check the cluster is up and reachable from here")
        return cls(cluster, engine)

    def version(self) -> str:
        return str(self.cluster.call(self.cluster.versions.get_code).git_version)

    def provider(self, *, run_id: str, root: Path) -> SandboxProvider:
        from runner.sandbox.kube.provider import KubeSandboxes

        return KubeSandboxes(self.cluster, run_id=run_id, root=root)

    def has_image(self, image: str) -> bool:
        """Whether a node of the cluster has ``image`` (a node that lacks it pulls it); True
        when runner may not list nodes (it cannot tell, and a Pod's start will)."""
        from kubernetes.client.exceptions import ApiException

        wanted = normalized_image(image)
        try:
            nodes = self.cluster.call(self.cluster.core.list_node, expect=(401, 403)).items
        except ApiException:
            return True
        return any(wanted in (normalized_image(name) for name in (held.names or []))
                   for node in nodes for held in (node.status.images or []))

    def ensure_image(self, image: str, sink: EventSink) -> None:
        """runner cannot send an image into a cluster: a node pulls it from a registry. One
        that no node has yet is said, not refused (the pull may work); one that cannot be
        pulled stops the first Pod, saying so."""
        if not self.has_image(image):
            sink.emit(Notice(f"image {image} is on none of the cluster's nodes yet: a node "
                             "pulls it when a Pod starts, so a registry they reach must have "
                             "it", level="warning"))

    def build_image(self, recipe: Recipe, sink: EventSink) -> str:
        """Built on this machine's Docker engine: a cluster builds nothing. Its nodes get it
        as they get any image (a registry they pull from, or loaded on each node), which
        ensure_image says when none has it."""
        from runner.sandbox.docker import docker_client, engine_must_answer
        from runner.sandbox.recipes import project_image

        with engine_must_answer():
            tag = project_image(docker_client(), recipe, sink)
        self.ensure_image(tag, sink)
        return tag

    def sandboxes(self) -> list[SandboxRecord]:
        pods = self.cluster.call(self.cluster.core.list_namespaced_pod, self.cluster.namespace,
                                 label_selector=RUN).items
        return [SandboxRecord(name=pod.metadata.name, run_id=pod.metadata.labels.get(RUN, ""),
                              labels=spec_labels(pod.metadata.annotations)
                              or dict(pod.metadata.labels or {}))
                for pod in pods]

    def remove_sandbox(self, name: str) -> bool:
        from kubernetes.client.exceptions import ApiException

        try:
            self.cluster.delete_pod(name)
            return True
        except ApiException:         # 404: gone already
            return False
