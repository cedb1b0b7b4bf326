"""A node lost, on a test cluster of two nodes (tests/engines/kube.py, its node lifecycle
controller marking a node that stopped answering after 20 s): a ticket whose Pod was on
the lost node is retried on the other one and integrates; one whose workspace is a claim
bound to that node waits for it, and a resume once it is back finishes it."""

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
from tests.helpers import git, make_repo, run_json, runner_cli, write_phase

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


class NodeKiller:
    """Kills node-2 once ``ticket``'s Pod runs there and its log says it committed; till
    then the first node takes no Pods, so that the ticket's Pod goes to node-2."""

    def __init__(self, cluster: TestCluster, core: Any, repo: Path, ticket: str) -> None:
        self.cluster, self.core, self.repo, self.ticket = cluster, core, repo, ticket
        self.killed: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> NodeKiller:
        self.core.patch_node("node", {"spec": {"unschedulable": True}})
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        try:
            while not self._stop.is_set():
                on_2 = [p for p in _pods_of(self.core, self.ticket)
                        if p.spec.node_name == "node-2" and p.status.phase == "Running"]
                logs = (self.repo / ".git" / "runner").glob(f"*/logs/{self.ticket}.log")
                if on_2 and any("committed-before" in log.read_text() for log in logs):
                    self.core.patch_node("node", {"spec": {"unschedulable": False}})
                    self.cluster.kill_node("node-2")
                    self.killed.append(on_2[0].metadata.name)
                    return
                time.sleep(0.2)
        finally:
            self.core.patch_node("node", {"spec": {"unschedulable": False}})


def _node_back(cluster: TestCluster, core: Any, name: str = "node-2",
               timeout: float = 180) -> None:
    """Start ``name`` again, and wait until the cluster says it is Ready."""
    cluster.start_node(name)
    deadline = time.monotonic() + timeout
    while not any(c.type == "Ready" and c.status == "True"
                  for c in core.read_node_status(name).status.conditions or []):
        assert time.monotonic() < deadline, f"{name} did not come back Ready"
        time.sleep(1)


def _env(cluster: TestCluster) -> dict[str, str]:
    return {**os.environ, "KUBECONFIG": str(cluster.kubeconfig)}


def test_an_emptydir_ticket_on_a_lost_node_is_retried_on_the_other(
        tmp_path: Path, two_nodes: TestCluster) -> None:
    core = _core(two_nodes)
    repo = make_repo(tmp_path / "repo")
    phase = write_phase(tmp_path / "p.yaml", {
        "name": "lost-node", "concurrency": 1, "resources": RESOURCES, "tickets": [
            {"id": "SLOW", "agent": "script", "retries": 1, "run": SLOW},
            {"id": "OK", "agent": "script", "run": "echo ok > ok.txt"}]})
    try:
        with NodeKiller(two_nodes, core, repo, "SLOW") as killer:
            proc, doc = run_json("run", str(phase), "--repo", str(repo), "--engine",
                                 "kubernetes", "--no-preflight", env=_env(two_nodes))
    finally:
        _node_back(two_nodes, core)
    assert killer.killed, "SLOW's Pod never ran on node-2"
    tickets = {t["id"]: t for t in doc["tickets"]}
    slow = tickets["SLOW"]
    assert slow["status"] == "integrated", (slow, proc.stderr)
    assert [a["result"] for a in slow["attempts"]] == ["stopped", "integrated"], slow
    assert "(node-2) stopped answering" in slow["attempts"][0]["reason"], slow
    assert tickets["OK"]["status"] == "integrated"
    # The rerun ran while node-2 was down: on the first node.
    assert git(repo, "show", f"{doc['target']}:slow.txt") == "slow"


# Commits, then works on: the node is killed meanwhile; the resume's run ends.
CLAIMED = """echo before > before.txt; git add -A; git commit -qm 'SLOW: before'
echo committed-before; sleep 20; echo slow > slow.txt"""


def test_a_claim_ticket_on_a_lost_node_waits_for_it_and_a_resume_finishes_it(
        tmp_path: Path, two_nodes: TestCluster) -> None:
    """Its claim is bound to node-2 (a local volume): not retried elsewhere (its work is
    there), it waits, what depends on it waits with it, the rest integrates, and the run
    ends resumable (exit 3). A resume while node-2 is still away says it still waits; one
    after it is back collects what the worker had committed, from a new Pod over the
    claim, and finishes the phase."""
    core = _core(two_nodes)
    repo = make_repo(tmp_path / "repo")
    phase = write_phase(tmp_path / "p.yaml", {
        "name": "lost-claim", "concurrency": 1, "resources": RESOURCES,
        "kubernetes": {"workspaces": "claim"}, "tickets": [
            {"id": "SLOW", "agent": "script", "retries": 1, "run": CLAIMED},
            {"id": "DEP", "agent": "script", "depends_on": ["SLOW"],
             "run": "echo dep > dep.txt"},
            {"id": "OK", "agent": "script", "run": "echo ok > ok.txt"}]})
    try:
        with NodeKiller(two_nodes, core, repo, "SLOW") as killer:
            proc, doc = run_json("run", str(phase), "--repo", str(repo), "--engine",
                                 "kubernetes", "--no-preflight", env=_env(two_nodes))
        assert killer.killed, "SLOW's Pod never ran on node-2"
        assert proc.returncode == 3, proc.stderr
        assert "waits for SLOW" in proc.stderr and "runner resume" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
        run_id = doc["run_id"]
        tickets = {t["id"]: t for t in doc["tickets"]}
        assert tickets["OK"]["status"] == "integrated"
        assert tickets["DEP"]["status"] == "skipped", tickets["DEP"]
        slow = tickets["SLOW"]
        assert "is on node node-2" in slow["reason"] and "waits" in slow["reason"], slow
        assert len(slow["attempts"]) <= 1, slow           # not run again elsewhere
        record = json.loads((Path(doc["run_dir"]) / "run.json").read_text())
        assert record["state"] == "interrupted"

        # node-2 still away: the resume says so, keeps the claim, and waits again.
        still, again = run_json("resume", run_id, "--repo", str(repo), env=_env(two_nodes))
        assert still.returncode == 3, still.stderr
        assert "a later resume finishes it" in still.stderr, still.stderr
        assert {t["id"]: t["status"] for t in again["tickets"]}["OK"] == "integrated"
    finally:
        _node_back(two_nodes, core)

    resumed, done = run_json("resume", run_id, "--repo", str(repo), env=_env(two_nodes))
    assert resumed.returncode == 0, resumed.stderr
    assert {t["id"]: t["status"] for t in done["tickets"]} == {
        "SLOW": "integrated", "DEP": "integrated", "OK": "integrated"}
    target = done["target"]
    assert [git(repo, "show", f"{target}:{name}") for name in ("slow.txt", "dep.txt", "ok.txt")
            ] == ["slow", "dep", "ok"]
    # What SLOW had committed on node-2 was collected from its claim, there.
    assert git(repo, "show", f"refs/runner/{run_id}/attempts/SLOW/interrupted:before.txt") \
        == "before"
    cleaned = runner_cli("clean", run_id, "--repo", str(repo), env=_env(two_nodes))
    assert cleaned.returncode == 0, cleaned.stdout + cleaned.stderr
