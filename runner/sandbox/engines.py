"""Which engine a run's sandboxes run on, picked in one place.

``engine:`` in the phase file, ``--engine`` or ``RUNNER_ENGINE`` (flag > environment > file):
``local`` (the default: the Docker engine of this machine, through DOCKER_HOST or its
socket; it shares the runner's disk), a ``tcp://host:port`` or ``ssh://user@host`` URL, or
the name of a Docker context. Those three are another machine's engine: it shares no disk
with the runner, so workspaces live in its volumes (sandbox/docker/remote.py). ``kubernetes`` (the
current context of KUBECONFIG or ~/.kube/config, or the cluster runner runs in) or
``kubernetes:CONTEXT``: a Pod per sandbox (sandbox/kube/). Each is connected as its Backend
by sandbox/backends.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
LOCAL = "local"
KUBERNETES = "kubernetes"
_URL = re.compile(r"(tcp|ssh)://[^\s/]+")
_CONTEXT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")


_KUBE = re.compile(rf"{KUBERNETES}(:\S+)?")     # a context may hold ":" (EKS ARNs)
FORMS = ("local, tcp://host:port, ssh://user@host, the name of a Docker context, kubernetes "
         "or kubernetes:CONTEXT")


def check_engine(value: str) -> str:
    """The phase field's validator: one line saying what forms there are."""
    if value == LOCAL or _URL.fullmatch(value) or _KUBE.fullmatch(value) or (
            _CONTEXT.fullmatch(value) and not value.startswith(KUBERNETES)):
        return value
    raise ValueError(f"{value!r} is not an engine: give {FORMS}")


@dataclass(frozen=True)
class Engine:
    name: str            # as the user gave it
    url: str | None      # what docker-py connects to (None: this machine's, from the env)
    kind: str = "docker"            # or KUBERNETES
    context: str | None = None      # the kubeconfig context (None: its current one)

    @property
    def local(self) -> bool:
        return self.kind == "docker" and self.url is None

    @property
    def limits_processes(self) -> bool:
        """Whether a sandbox's process count can be bounded per sandbox (``resources.pids``):
        a Pod's spec has no such field; the node's kubelet bounds every Pod alike."""
        return self.kind != KUBERNETES

    @property
    def receives_images(self) -> bool:
        """Whether runner can put an image on it itself (a cluster's nodes pull theirs from
        a registry they reach)."""
        return self.kind != KUBERNETES

    @property
    def networks(self) -> tuple[str, ...]:
        """The ``network:`` values its sandboxes can have (a cluster's Pods: none alone,
        under the run's deny-all NetworkPolicy)."""
        return ("none",) if self.kind == KUBERNETES else ("none", "bridge")

    @property
    def isolation_note(self) -> str | None:
        """What the engine itself adds to a run's isolation, for runner doctor."""
        if self.kind != KUBERNETES:
            return None
        return ("NetworkPolicy: each run's Pods get one that denies all traffic in and out; "
                "whether the cluster enforces it is what the self-test's network check proves")

    @property
    def kept_workspace_advice(self) -> str:
        """How a workspace outlives its sandbox there ("" where it always does)."""
        return (", or it went with its Pod: `kubernetes: {workspaces: claim}` keeps it"
                if self.kind == KUBERNETES else "")

    @property
    def title(self) -> str:
        """What to call it in a sentence: "Docker" or "Kubernetes"."""
        return "Kubernetes" if self.kind == KUBERNETES else "Docker"


def resolve(name: str) -> Engine:
    if name == LOCAL:
        return Engine(name, None)
    if _KUBE.fullmatch(name):
        return Engine(name, None, kind=KUBERNETES, context=name.partition(":")[2] or None)
    if _URL.fullmatch(name):
        return Engine(name, name)
    return Engine(name, _context_url(name))


def _context_url(name: str) -> str:
    """A Docker context's endpoint, as the docker CLI keeps it."""
    from docker.context import ContextAPI

    from runner.errors import EnvironmentProblem

    context = ContextAPI.get_context(name)
    if context is None:
        raise EnvironmentProblem(f"there is no Docker context {name!r} (docker context ls "
                                 "lists them); give local, tcp://host:port or ssh://user@host")
    return str(context.Host)
