"""A cluster runner talks to: its API clients and namespace, loaded from a kubeconfig
context or from inside the cluster; what an API failure means, in a sentence."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from runner.errors import EngineUnavailable, EnvironmentProblem
from runner.sandbox import Take
from runner.sandbox.kube.pods import CONTAINER

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

    def answers(self, patience: float = 0.0) -> bool:
        """Whether the API server answers a cheap read, asked again for ``patience``
        seconds (after a stream that broke: sandbox/cuts.py)."""
        from runner.sandbox.cuts import still_answers

        return still_answers(lambda: self.versions.get_code(_request_timeout=5), patience)


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
