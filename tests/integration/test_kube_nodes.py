"""A node lost, on a test cluster of two nodes (tests/engines/kube.py, its node lifecycle
controller marking a node that stopped answering after 20 s): a ticket whose Pod was on
the lost node is retried on the other one and integrates."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.engines.kube import TestCluster, running_cluster
from tests.helpers import git, make_repo, run_json, write_phase

pytestmark = pytest.mark.timeout(1800)

RESOURCES = {"cpus": 0.2, "memory": "512m"}
# The first attempt commits, says so, then works on; the rerun finishes at once.
SLOW = """case $HOSTNAME in
  *-rerun1-*) echo slow > slow.txt ;;
  *) echo before > before.txt; git add -A; git commit -qm 'SLOW: before'
     echo committed-before; sleep 120 ;;
esac"""


@pytest.fixture(scope="module")
def two_nodes(engine: docker.DockerClient, worker_image: str) -> Iterator[TestCluster]:
    with running_cluster(engine, nodes=2) as cluster:
        cluster.load(worker_image)
        yield cluster


def _core(cluster: TestCluster) -> Any:
    from kubernetes import client, config

    return client.CoreV1Api(config.new_client_from_config(config_file=str(cluster.kubeconfig)))


def _pods_of(core: Any, ticket: str) -> list[Any]:
    return [pod for pod in core.list_namespaced_pod("default").items
            if json.loads((pod.metadata.annotations or {}).get("runner.labels", "{}")
                          ).get("runner.ticket") == ticket]


def test_an_emptydir_ticket_on_a_lost_node_is_retried_on_the_other(
        tmp_path: Path, two_nodes: TestCluster) -> None:
    core = _core(two_nodes)
    repo = make_repo(tmp_path / "repo")
    phase = write_phase(tmp_path / "p.yaml", {
        "name": "lost-node", "concurrency": 1, "resources": RESOURCES, "tickets": [
            {"id": "SLOW", "agent": "script", "retries": 1, "run": SLOW},
            {"id": "OK", "agent": "script", "run": "echo ok > ok.txt"}]})
    # SLOW's first Pod goes to node-2: the first node takes none until it runs there.
    core.patch_node("node", {"spec": {"unschedulable": True}})
    killed: list[str] = []
    stop = threading.Event()

    def kill_node_2_under_slow() -> None:
        try:
            while not stop.is_set():
                on_2 = [p for p in _pods_of(core, "SLOW")
                        if p.spec.node_name == "node-2" and p.status.phase == "Running"]
                logs = list((repo / ".git" / "runner").glob("*/logs/SLOW.log"))
                if on_2 and any("committed-before" in log.read_text() for log in logs):
                    core.patch_node("node", {"spec": {"unschedulable": False}})
                    two_nodes.kill_node("node-2")
                    killed.append(on_2[0].metadata.name)
                    return
                time.sleep(0.2)
        finally:
            core.patch_node("node", {"spec": {"unschedulable": False}})

    killer = threading.Thread(target=kill_node_2_under_slow, daemon=True)
    killer.start()
    try:
        proc, doc = run_json("run", str(phase), "--repo", str(repo), "--engine", "kubernetes",
                             "--no-preflight",
                             env={**os.environ, "KUBECONFIG": str(two_nodes.kubeconfig)})
    finally:
        stop.set()
        killer.join()
        two_nodes.start_node("node-2")
    assert killed, "SLOW's Pod never ran on node-2"
    tickets = {t["id"]: t for t in doc["tickets"]}
    slow = tickets["SLOW"]
    assert slow["status"] == "integrated", (slow, proc.stderr)
    assert [a["result"] for a in slow["attempts"]] == ["stopped", "integrated"], slow
    assert "(node-2) stopped answering" in slow["attempts"][0]["reason"], slow
    assert tickets["OK"]["status"] == "integrated"
    # The rerun ran while node-2 was down: on the first node.
    assert git(repo, "show", f"{doc['target']}:slow.txt") == "slow"
