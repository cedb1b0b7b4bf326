"""What the cluster's nodes can hold: each one's allocatable CPUs and memory, as the API
reports them. It sizes a run's default concurrency (the nodes that take Pods now), and it
tells a Pod that no node could ever hold from one that waits for room (every node)."""

from __future__ import annotations

from typing import Any

from kubernetes.client.exceptions import ApiException
from kubernetes.utils.quantity import parse_quantity

from runner.sandbox.kube.cluster import Cluster, normalized_image


def list_nodes(cluster: Cluster) -> list[Any] | None:
    """The cluster's nodes; None when runner may not list them."""
    try:
        return list(cluster.call(cluster.core.list_node, expect=(401, 403)).items)
    except ApiException:
        return None


def takes_pods(node: Any) -> bool:
    """Ready, schedulable, and no taint that keeps runner's Pods (which tolerate none) off."""
    spec = node.spec
    if spec is not None and (spec.unschedulable or any(
            taint.effect in ("NoSchedule", "NoExecute") for taint in spec.taints or [])):
        return False
    return any(c.type == "Ready" and c.status == "True"
               for c in (node.status.conditions if node.status else None) or [])


def room(node: Any) -> tuple[float, int]:
    """A node's allocatable CPUs and memory (bytes)."""
    allocatable = (node.status.allocatable if node.status else None) or {}
    return (float(parse_quantity(allocatable.get("cpu", "0"))),
            int(parse_quantity(allocatable.get("memory", "0"))))


def requests(manifest: dict[str, Any]) -> tuple[float, int]:
    """The CPUs and memory a Pod's containers ask for together (its init containers run
    before them, one at a time, and ask for no more than the worker)."""
    cpus, memory = 0.0, 0
    for container in manifest["spec"]["containers"]:
        asked = container.get("resources", {}).get("requests", {})
        cpus += float(parse_quantity(asked.get("cpu", "0")))
        memory += int(parse_quantity(asked.get("memory", "0")))
    return cpus, memory


def no_node_holds(cluster: Cluster, asked: tuple[float, int]) -> str | None:
    """Why no node of the cluster, even idle, could hold a Pod that asks for ``asked``; None
    when one could (or runner cannot tell): such a Pod waits for room."""
    nodes = list_nodes(cluster)
    if not nodes:
        return None
    rooms = [room(node) for node in nodes]
    if any(cpus >= asked[0] and memory >= asked[1] for cpus, memory in rooms):
        return None
    cpus, memory = max(rooms)
    return (f"it asks for {asked[0]:g} CPUs and {asked[1] / (1 << 30):.1f} GiB, and the "
            f"largest of the cluster's {len(nodes)} nodes has {cpus:g} and "
            f"{memory / (1 << 30):.1f} GiB")


def has(node: Any, image: str) -> bool:
    """Whether ``node`` lists ``image`` among those it holds."""
    wanted = normalized_image(image)
    return any(wanted in (normalized_image(name) for name in held.names or [])
               for held in (node.status.images if node.status else None) or [])


def on_every_node(cluster: Cluster, image: str) -> bool:
    """Whether every node that takes Pods holds ``image`` (False when runner cannot tell)."""
    taking = [node for node in list_nodes(cluster) or [] if takes_pods(node)]
    return bool(taking) and all(has(node, image) for node in taking)


HOSTNAME = "kubernetes.io/hostname"


def bound_node(cluster: Cluster, claim: str) -> str | None:
    """The one node a claim's volume can be used on (a local volume's node affinity names
    it by its hostname label); None for a volume any node may mount, or one not bound yet,
    or when runner may not read volumes."""
    try:
        found = cluster.call(cluster.core.read_namespaced_persistent_volume_claim, claim,
                             cluster.namespace, expect=(401, 403, 404))
        if not found.spec.volume_name:
            return None
        volume = cluster.call(cluster.core.read_persistent_volume, found.spec.volume_name,
                              expect=(401, 403, 404))
    except ApiException:
        return None
    required = volume.spec.node_affinity.required if volume.spec.node_affinity else None
    hosts = {value for term in (required.node_selector_terms if required else None) or []
             for expression in term.match_expressions or []
             if expression.key == HOSTNAME and expression.operator == "In"
             for value in expression.values or []}
    if len(hosts) != 1:
        return None
    host = hosts.pop()
    try:
        nodes = cluster.call(cluster.core.list_node, label_selector=f"{HOSTNAME}={host}",
                             expect=(401, 403)).items
    except ApiException:
        return host                       # the hostname label is the node's name, as a rule
    return nodes[0].metadata.name if len(nodes) == 1 else host
