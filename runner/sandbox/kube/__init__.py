"""Kubernetes as a Backend: a Pod per sandbox, through the official ``kubernetes`` client.

``--engine kubernetes`` uses the current context of KUBECONFIG (or ~/.kube/config), or the
cluster runner itself runs in; ``kubernetes:CONTEXT`` names a context. The lead, the run's
object store and the API key stay where runner runs: a worker's clone goes into its Pod as a
git bundle on an exec stream's stdin, and its work comes out as the bundle collect already
makes, on the stream's stdout. What runner makes there carries the label ``runner.run``: the
run's Pods and one NetworkPolicy that denies all traffic in and out of them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from runner.errors import EngineUnavailable
from runner.records import EventSink, Notice
from runner.sandbox import Capacity, SandboxProvider, SandboxRecord
from runner.sandbox.engines import Engine
from runner.sandbox.kube.cluster import Cluster, load_cluster
from runner.sandbox.kube.pods import RUN, spec_labels

if TYPE_CHECKING:
    from runner.sandbox.recipes import Recipe

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
        from runner.sandbox.kube.nodes import has, list_nodes

        nodes = list_nodes(self.cluster)
        return nodes is None or any(has(node, image) for node in nodes)

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
        from runner.sandbox.docker.client import docker_client, engine_must_answer
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

    def capacity(self) -> Capacity | None:
        """The allocatable CPUs and memory of each node that takes Pods now; None when
        runner may not list nodes, or none does (nothing is said of it then)."""
        from runner.sandbox.kube.nodes import list_nodes, room, takes_pods

        machines = tuple(room(node) for node in list_nodes(self.cluster) or []
                         if takes_pods(node))
        return Capacity(machines=machines) if machines else None

    def runtimes(self) -> frozenset[str] | None:
        """The cluster's RuntimeClasses (what a Pod's runtimeClassName may name); None when
        runner may not list them."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        node_api = client.NodeV1Api(self.cluster.api)
        try:
            found = self.cluster.call(node_api.list_runtime_class, expect=(401, 403, 404))
        except ApiException:
            return None
        return frozenset(item.metadata.name for item in found.items)

    def remove_sandbox(self, name: str) -> bool:
        from kubernetes.client.exceptions import ApiException

        try:
            self.cluster.delete_pod(name)
            return True
        except ApiException:         # 404: gone already
            return False
