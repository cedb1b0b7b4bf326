"""A phase on Kubernetes (the test cluster: Debian's kube-apiserver, kubelet, scheduler and the
volume controllers in a container, the API on 127.0.0.1) through `runner run --engine
kubernetes`: it integrates as on the local engine, the self-test passes on Pods, the Pods carry
the hardening (read back from the API), a Pod deleted mid-ticket is a ticket run again (over a
claim, its commits collected from a new Pod), an API server gone mid-run is exit 3 and a
resume (over a claim, even with the Pod gone), `runner clean` leaves nothing of the run,
`runner shell` opens a terminal in a Pod, the gateway reaches Pods (its key and its socket
staying on this machine), and the real Claude Code runs there with its own copy of the
binary."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runner.agents.claude_binary import bundled_binary
from runner.sandbox.kube.pods import pod_user
from tests.engines.kube import TestCluster
from tests.fakes.messages_api import FakeMessagesAPI, Reply, done, tool
from tests.helpers import (API_CALL, ENGINE_TICKETS as TICKETS, git, in_a_terminal, make_repo,
                           run_json, runner_cli, write_phase)

# The first session on a machine builds the cluster's binaries (about 10 minutes).
pytestmark = pytest.mark.timeout(1800)

# The test node has two cores, and a kept Pod (--keep) holds what it requested.
RESOURCES = {"cpus": 0.2, "memory": "512m"}


def _env(cluster: TestCluster) -> dict[str, str]:
    return {**os.environ, "KUBECONFIG": str(cluster.kubeconfig)}


def _api(cluster: TestCluster) -> tuple[Any, Any]:
    from kubernetes import client, config

    api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    return client.CoreV1Api(api), client.NetworkingV1Api(api)


def _of_run(cluster: TestCluster, run_id: str) -> dict[str, list[Any]]:
    core, net = _api(cluster)
    selector = f"runner.run={run_id}"
    return {"pods": core.list_namespaced_pod("default", label_selector=selector).items,
            "policies": net.list_namespaced_network_policy("default",
                                                           label_selector=selector).items,
            "claims": core.list_namespaced_persistent_volume_claim(
                "default", label_selector=selector).items}


def _wait_until_a_node_reports(cluster: TestCluster, image: str, timeout: float = 120) -> None:
    """A kubelet reports the images it holds in its node's status every few seconds: an
    image just imported is there only after the next report."""
    from runner.sandbox.kube.cluster import normalized_image

    core, _ = _api(cluster)
    deadline = time.monotonic() + timeout
    wanted = normalized_image(image)
    while not any(wanted in map(normalized_image, held.names or [])
                  for node in core.list_node().items for held in (node.status.images or [])):
        assert time.monotonic() < deadline, f"no node reports {image}"
        time.sleep(1)


def _tree(repo: Path, ref: str) -> dict[str, str]:
    files = git(repo, "ls-tree", "-r", "--name-only", ref).split()
    return {f: git(repo, "show", f"{ref}:{f}") for f in files if f != "shared.txt"}


def _phase_run(root: Path, env: dict[str, str] | None, *flags: str) -> tuple[Path, Any, dict]:
    repo = make_repo(root / "repo", {"shared.txt": "base\n"})
    phase = write_phase(root / "p.yaml", {"name": "kube", "concurrency": 3,
                                           "resources": RESOURCES, "tickets": TICKETS})
    proc, doc = run_json("run", str(phase), "--repo", str(repo), *flags, env=env)
    return repo, proc, doc


@pytest.fixture(scope="module")
def kube_run(tmp_path_factory: pytest.TempPathFactory, kube_cluster: TestCluster):
    root = tmp_path_factory.mktemp("kube")
    repo, proc, doc = _phase_run(root, _env(kube_cluster), "--keep", "--engine", "kubernetes")
    kept = _of_run(kube_cluster, doc.get("run_id", "-"))
    yield {"root": root, "repo": repo, "proc": proc, "doc": doc, "kept": kept}
    core, net = _api(kube_cluster)
    core.delete_collection_namespaced_pod("default", grace_period_seconds=0,
                                          label_selector=f"runner.run={doc.get('run_id')}")


def test_a_phase_integrates_on_kubernetes_as_on_the_local_engine(
        kube_run, tmp_path: Path, worker_image: str) -> None:
    proc, doc, repo = kube_run["proc"], kube_run["doc"], kube_run["repo"]
    assert proc.returncode == 0, proc.stderr
    assert "isolation self-test passed" in proc.stderr
    assert {t["id"]: t["status"] for t in doc["tickets"]} == {t["id"]: "integrated"
                                                              for t in TICKETS}
    local_repo, local, local_doc = _phase_run(tmp_path / "local", None)
    assert local.returncode == 0, local.stderr
    assert _tree(repo, doc["target"]) == _tree(local_repo, local_doc["target"])
    shared = sorted(git(repo, "show", f"{doc['target']}:shared.txt").splitlines())
    assert shared == ["base", "one", "two"]


def test_the_pods_carry_the_hardening(kube_run) -> None:
    """Read back from the API: what the cluster runs, not what runner meant to send."""
    pods, [policy] = kube_run["kept"]["pods"], kube_run["kept"]["policies"]
    assert len(pods) >= len(TICKETS)            # --keep: every ticket's Pod (and the rerun's)
    for pod in pods:
        spec = pod.spec
        assert spec.automount_service_account_token is False
        assert spec.restart_policy == "Never" and spec.enable_service_links is False
        assert not spec.host_network and not spec.host_pid and not spec.host_ipc
        context = spec.security_context
        assert context.run_as_non_root is True and context.run_as_user != 0
        assert context.seccomp_profile.type == "RuntimeDefault"
        [worker] = spec.containers
        hardened = worker.security_context
        assert hardened.allow_privilege_escalation is False and hardened.privileged is False
        assert hardened.read_only_root_filesystem is True
        assert hardened.capabilities.drop == ["ALL"] and not hardened.capabilities.add
        assert worker.resources.limits == {"cpu": "200m", "memory": str(512 * 2**20)}
        assert worker.resources.requests == worker.resources.limits
        volumes = {v.name: v for v in spec.volumes}
        assert {"workspace", "gradle", "tmp"} <= set(volumes)
        assert all(v.empty_dir is not None for v in volumes.values())    # no host path
        root = str(kube_run["root"])
        assert root not in json.dumps(pod.to_dict(), default=str)
        assert pod.metadata.labels["runner.run"] == kube_run["doc"]["run_id"]
    assert policy.spec.policy_types == ["Ingress", "Egress"]
    assert not policy.spec.ingress and not policy.spec.egress
    assert policy.spec.pod_selector.match_labels == {"runner.run": kube_run["doc"]["run_id"]}


def test_the_cluster_admits_only_restricted_pods_and_every_run_pod_was(
        kube_run, kube_cluster) -> None:
    """Pod Security "restricted" is enforced on the test cluster (a root Pod is refused), and
    the run's Pods, admitted under it, have no container that is root, init ones included
    (read back from the API)."""
    core, _ = _api(kube_cluster)
    from kubernetes.client.exceptions import ApiException

    rooted = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "rooted"}, "spec": {
        "automountServiceAccountToken": False,
        "containers": [{"name": "c", "image": "runner-worker:latest",
                        "securityContext": {"runAsUser": 0}}]}}
    with pytest.raises(ApiException) as refused:
        core.create_namespaced_pod("default", rooted)
    assert refused.value.status == 403, refused.value.body
    assert "PodSecurityPolicy" in refused.value.body and "root UID is forbidden" in \
        refused.value.body
    for pod in kube_run["kept"]["pods"]:
        context = pod.spec.security_context
        for container in (pod.spec.init_containers or []) + pod.spec.containers:
            own = container.security_context
            assert (own.run_as_user or context.run_as_user) != 0, container.name
            assert own.allow_privilege_escalation is False, container.name
            assert own.capabilities.drop == ["ALL"] and not own.capabilities.add


def test_shell_in_the_pod_a_run_kept(kube_run, kube_cluster) -> None:
    """A terminal in the Pod --keep left: the worker's files, its user, its read-only root;
    the Pod stays as it was."""
    pods = {p.metadata.name for p in _of_run(kube_cluster, kube_run["doc"]["run_id"])["pods"]}
    code, said = in_a_terminal(
        [sys.executable, "-m", "runner", "shell", "A", "--repo", str(kube_run["repo"])],
        b"stty size; cat a.txt; id -u; touch /probe; exit 5\n", env=_env(kube_cluster))
    assert code == 5, said
    assert "a shell in" in said and "the container the run kept" in said
    assert "\na\r\n" in said
    assert f"\n{pod_user(f'{os.getuid()}:{os.getgid()}')[0]}\r\n" in said
    assert "Read-only file system" in said
    assert "45 123" in said            # the terminal's size (in_a_terminal's) reached the Pod
    assert {p.metadata.name for p in _of_run(kube_cluster,
                                             kube_run["doc"]["run_id"])["pods"]} == pods


def test_clean_leaves_no_pod_policy_or_volume_of_the_run(kube_run, kube_cluster) -> None:
    run_id, repo = kube_run["doc"]["run_id"], kube_run["repo"]
    cleaned = runner_cli("clean", run_id, "--repo", str(repo), env=_env(kube_cluster))
    assert cleaned.returncode == 0, cleaned.stdout + cleaned.stderr
    assert _of_run(kube_cluster, run_id) == {"pods": [], "policies": [], "claims": []}
    assert git(repo, "rev-parse", kube_run["doc"]["target"])     # refs and records kept


def _gone_soon(cluster: TestCluster, run_id: str) -> dict[str, list[Any]]:
    """What is left of the run once the cluster has had a moment: a claim deleted stays
    Terminating until its controller sees no Pod uses it."""
    deadline = time.monotonic() + 30
    while (left := _of_run(cluster, run_id))["claims"] and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


# A ticket that commits, then sleeps in its first Pod (deleted then); the rerun's Pod (its
# name says so) is quick.
SLOW = """case $HOSTNAME in
  *-rerun1-*) echo slow > slow.txt ;;
  *) echo before > before.txt; git add -A; git commit -qm 'SLOW: before'
     echo committed-before; sleep 30 ;;
esac"""


@pytest.mark.parametrize("workspaces", ["pod", "claim"])
def test_a_pod_deleted_mid_ticket_is_run_again(tmp_path: Path, kube_cluster,
                                               workspaces: str) -> None:
    """Deleted from outside: the ticket is retried (retries: 1) from the start and
    integrates; the others are untouched. On emptyDir its workspace went with it; over a
    claim a new Pod took it over, and what the worker had committed was collected."""
    repo = make_repo(tmp_path / "repo")
    phase = write_phase(tmp_path / "p.yaml", {
        "name": "deleted", "concurrency": 2, "resources": RESOURCES,
        "kubernetes": {"workspaces": workspaces}, "tickets": [
            {"id": "SLOW", "agent": "script", "retries": 1, "run": SLOW},
            {"id": "OK", "agent": "script", "run": "echo ok > ok.txt"}]})
    core, _ = _api(kube_cluster)
    deleted: list[str] = []
    stop = threading.Event()

    def committed() -> bool:       # the ticket's log says so: it is into its sleep
        return any("committed-before" in log.read_text()
                   for log in (repo / ".git" / "runner").glob("*/logs/SLOW.log"))

    def delete_slow_once() -> None:
        while not stop.is_set() and not deleted:
            for pod in core.list_namespaced_pod("default").items:
                labels = json.loads((pod.metadata.annotations or {}).get("runner.labels", "{}"))
                if labels.get("runner.ticket") == "SLOW" and pod.status.phase == "Running" \
                        and committed():
                    core.delete_namespaced_pod(pod.metadata.name, "default",
                                               grace_period_seconds=0)
                    deleted.append(pod.metadata.name)
                    return
            time.sleep(0.2)

    deleter = threading.Thread(target=delete_slow_once, daemon=True)
    deleter.start()
    try:
        proc, doc = run_json("run", str(phase), "--repo", str(repo), "--engine", "kubernetes",
                             "--no-preflight", env=_env(kube_cluster))
    finally:
        stop.set()
        deleter.join()
    assert deleted, "the test never saw SLOW's Pod running"
    tickets = {t["id"]: t for t in doc["tickets"]}
    assert tickets["OK"]["status"] == "integrated" and not tickets["OK"]["reruns"]
    slow = tickets["SLOW"]
    assert slow["status"] == "integrated", proc.stderr
    assert [a["result"] for a in slow["attempts"]] == ["stopped", "integrated"], slow
    assert "was deleted" in slow["attempts"][0]["reason"], slow
    assert "its container was stopped; rerun 1 queued" in proc.stderr
    assert git(repo, "show", f"{doc['target']}:slow.txt") == "slow"
    first = f"refs/runner/{doc['run_id']}/attempts/SLOW/1"
    left = _of_run(kube_cluster, doc["run_id"])
    assert left["pods"] == [] and left["policies"] == []
    if workspaces == "pod":
        assert "its workspace went with it" in slow["attempts"][0]["reason"], slow
        assert not git(repo, "for-each-ref", first)
        assert left["claims"] == []
        return
    assert "a new Pod takes over its workspace" in slow["attempts"][0]["reason"], slow
    assert git(repo, "show", f"{first}:before.txt") == "before"
    # The checkouts stay on their claims, as volumes do on Docker, until `runner clean`.
    assert sorted(c.metadata.annotations["runner.checkout-key"] for c in left["claims"]) == [
        "/OK", "/SLOW", "reruns/1/SLOW"]
    # A terminal in a new Pod over OK's claim; it goes when the shell ends, the claim stays.
    code, said = in_a_terminal(
        [sys.executable, "-m", "runner", "shell", "OK", "--repo", str(repo)],
        b"cat ok.txt; exit 3\n", env=_env(kube_cluster))
    assert code == 3 and "a shell in a new container over OK's workspace" in said, said
    assert "ok\r\nlogout" in said, said          # cat's line, then the login shell's exit
    after = _of_run(kube_cluster, doc["run_id"])
    assert after["pods"] == [] and len(after["claims"]) == 3
    cleaned = runner_cli("clean", doc["run_id"], "--repo", str(repo), env=_env(kube_cluster))
    assert cleaned.returncode == 0, cleaned.stdout + cleaned.stderr
    assert _gone_soon(kube_cluster, doc["run_id"]) == {"pods": [], "policies": [],
                                                        "claims": []}


@pytest.mark.parametrize("workspaces", ["pod", "claim"])
def test_the_api_server_gone_mid_run_is_exit_3_and_resume_finishes(
        tmp_path: Path, kube_cluster, workspaces: str) -> None:
    """Over a claim, S's Pod is also deleted while runner is away: the resume salvages what
    S committed all the same, from a new Pod over the claim."""
    repo = make_repo(tmp_path / "repo")
    phase = write_phase(tmp_path / "p.yaml", {
        "name": "apigone", "resources": RESOURCES, "kubernetes": {"workspaces": workspaces},
        "tickets": [
            {"id": "F", "agent": "script", "run": "echo f > f.txt"},
            {"id": "S", "agent": "script", "run": "echo part > part.txt\ngit add -A\n"
             "git commit -q -m 'S: part'\nsleep 8\necho done > done.txt"}]})
    core, _ = _api(kube_cluster)
    proc = subprocess.Popen([sys.executable, "-m", "runner", "run", str(phase), "--repo",
                             str(repo), "--engine", "kubernetes", "--no-preflight"],
                            env=_env(kube_cluster), text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not git(repo, "for-each-ref", "refs/runner/*/F") or not any(
                json.loads((p.metadata.annotations or {}).get("runner.labels", "{}")).get(
                    "runner.ticket") == "S" and p.status.phase == "Running"
                for p in core.list_namespaced_pod("default").items):
            assert time.monotonic() < deadline and proc.poll() is None, "S never started"
            time.sleep(0.2)
        time.sleep(2.5)                              # S has committed its part
        kube_cluster.stop_apiserver()
        out, err = proc.communicate(timeout=180)
    finally:
        proc.kill()
        if not kube_cluster.answers():
            kube_cluster.start_apiserver()
    assert proc.returncode == 3, out + err
    assert "engine stopped answering" in err and "runner resume" in err, err
    assert "Traceback" not in err
    [run_dir] = (repo / ".git" / "runner").iterdir()
    record = json.loads((run_dir / "run.json").read_text())
    assert record["state"] == "interrupted"
    assert record["outcomes"]["F"]["status"] == "integrated"
    if workspaces == "claim":
        claims = _of_run(kube_cluster, run_dir.name)["claims"]
        assert "/S" in {c.metadata.annotations["runner.checkout-key"] for c in claims}
        core.delete_collection_namespaced_pod("default", grace_period_seconds=0,
                                              label_selector=f"runner.run={run_dir.name}")

    resumed = runner_cli("resume", run_dir.name, "--repo", str(repo), env=_env(kube_cluster))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    target = json.loads((run_dir / "run.json").read_text())["target"]
    assert git(repo, "show", f"{target}:f.txt") == "f"
    assert git(repo, "show", f"{target}:done.txt") == "done"
    # What S had committed before the API went was salvaged from its Pod, not lost.
    assert git(repo, "show", f"refs/runner/{run_dir.name}/attempts/S/interrupted:part.txt") \
        == "part"
    if workspaces == "claim":       # the checkouts stay on their claims until a clean
        cleaned = runner_cli("clean", run_dir.name, "--repo", str(repo), env=_env(kube_cluster))
        assert cleaned.returncode == 0, cleaned.stdout + cleaned.stderr
    assert _gone_soon(kube_cluster, run_dir.name) == {"pods": [], "policies": [],
                                                       "claims": []}


def test_doctor_runs_the_self_test_on_pods(kube_cluster) -> None:
    proc = runner_cli("doctor", "--engine", "kubernetes", env=_env(kube_cluster))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Kubernetes answers" in proc.stdout and "v1.20" in proc.stdout
    for check in ("NetworkPolicy", "no network (network: none)", "runs as the worker's user",
                  "other worker's files invisible", "no DNS"):
        assert check in proc.stdout
    assert " 0 failed" in proc.stdout
    # The test cluster's kubeconfig skips TLS verification on purpose: said by no call.
    assert "InsecureRequestWarning" not in proc.stderr


KEY = "sk-ant-kube-key-0123456789"
# Then: what it can see of the relay's processes (nothing: none of them is its to signal), a
# listed host (through a CONNECT) and an unlisted one; the key it holds.
WAY_OUT = """ps -eo comm= | sort -u > procs.txt
curl -sS -p -x "$HTTPS_PROXY" --noproxy '' http://127.0.0.1:{port}/hi > listed.txt
curl -s -o /dev/null -w '%{{http_connect}}' -p -x "$HTTPS_PROXY" --noproxy '' \\
  http://127.0.0.2:{port}/ > unlisted.txt || true
echo "$ANTHROPIC_API_KEY" > key.txt
"""


@pytest.fixture
def listed_host() -> Iterator[int]:
    """An HTTP server on this machine's loopback, which only the gateway can reach."""
    class Hello(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"hello from the listed host\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_the_gateway_reaches_pods_with_the_key_left_here(
        tmp_path: Path, kube_cluster: TestCluster, listed_host: int) -> None:
    """Two command tickets at once, each through its own Pod's relay: the API call metered
    to its ticket with the real key added here, a listed host reached, an unlisted one
    refused. The worker cannot see the relay's processes, let alone stop them."""
    repo = make_repo(tmp_path / "repo")
    phase = write_phase(tmp_path / "p.yaml", {
        "name": "kube-gateway", "concurrency": 2, "resources": RESOURCES,
        "egress": [f"127.0.0.1:{listed_host}"],
        "tickets": [{"id": t, "agent": "command", "prompt": f"hi from {t}",
                     # Each in a directory of its own: the two integrate side by side.
                     "run": f"mkdir {t} && cd {t}\n" + API_CALL
                     + WAY_OUT.format(port=listed_host)} for t in ("A", "B")]})
    replies = {t: [Reply([tool("noop")], usage=(11, 7, 0, 0))] for t in ("A", "B")}
    with FakeMessagesAPI(replies) as fake:
        env = {**_env(kube_cluster), "ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": fake.url}
        proc, doc = run_json("run", str(phase), "--repo", str(repo), "--engine",
                             "kubernetes", "--keep", env=env)
    run_id = doc.get("run_id", "-")
    kept = _of_run(kube_cluster, run_id)
    cleaned = runner_cli("clean", run_id, "--repo", str(repo), env=_env(kube_cluster))
    assert proc.returncode == 0, proc.stderr
    assert "isolation self-test passed" in proc.stderr
    for ticket in doc["tickets"]:
        ref = f"{ticket['ref']}:{ticket['id']}"
        assert '"noop"' in git(repo, "show", f"{ref}/answer.json")
        assert ticket["tokens"] == 18                        # metered here, to its ticket
        [request] = fake.requests_for(ticket["id"])
        assert request.headers["x-api-key"] == KEY
        assert request.body["messages"][0]["content"] == f"hi from {ticket['id']}"
        assert git(repo, "show", f"{ref}/key.txt") == "runner-gateway-placeholder"
        assert git(repo, "show", f"{ref}/listed.txt") == "hello from the listed host"
        assert git(repo, "show", f"{ref}/unlisted.txt") == "403"
        assert "socat" not in git(repo, "show", f"{ref}/procs.txt")
    pods = [pod for pod in kept["pods"] if "runner.ticket" in pod.metadata.annotations.get(
        "runner.labels", "")]
    assert len(pods) == 2, [p.metadata.name for p in kept["pods"]]
    for pod in pods:
        assert KEY not in json.dumps(pod.to_dict(), default=str)
        containers = {c.name: c for c in pod.spec.containers}
        relay = containers["gateway"].security_context
        assert relay.run_as_user == 65534 and relay.read_only_root_filesystem is True
        assert relay.capabilities.drop == ["ALL"] and relay.allow_privilege_escalation is False
        assert "/relay" not in {m.mount_path for m in containers["worker"].volume_mounts}
    assert cleaned.returncode == 0, cleaned.stdout + cleaned.stderr
    assert _of_run(kube_cluster, run_id) == {"pods": [], "policies": [], "claims": []}


@pytest.mark.skipif(bundled_binary() is None or not bundled_binary().is_file(),
                    reason="the claude-agent-sdk wheel is not installed (./setup.sh --dev)")
@pytest.mark.parametrize("delivered", ["copy", "image"])
def test_claude_code_runs_in_a_pod_with_its_own_copy_of_the_binary(
        tmp_path: Path, kube_cluster: TestCluster, delivered: str) -> None:
    """The real Claude Code binary, sent into the Pod (a Pod cannot mount this machine's),
    or, once the node has it, in the image that carries it (nothing sent), reaching the
    fake Messages API only through the Pod's relay and runner's gateway, with the key added
    here."""
    if delivered == "image":
        from runner.agents.claude_binary import bundled_binary
        from runner.sandbox import CLAUDE_BINARY, Mount
        from runner.sandbox.kube.carried import carried_image

        binary = bundled_binary()
        assert binary is not None
        tag = carried_image("runner-worker:latest",
                            (Mount(binary, CLAUDE_BINARY, read_only=True),))
        assert tag is not None and ":carries-" in tag
        kube_cluster.load(tag)
        core, _ = _api(kube_cluster)
        for _ in range(120):        # until the node's status lists it (every 10 s or so)
            names = {n for node in core.list_node().items for image in node.status.images
                     for n in image.names or []}
            if f"docker.io/library/{tag}" in names:
                break
            time.sleep(1)
    repo = make_repo(tmp_path / "repo")
    phase = write_phase(tmp_path / "p.yaml", {
        "name": "kube-claude", "resources": {"cpus": 0.5, "memory": "1g"},
        "prices": {"claude-haiku-5-5": {"input": 1.0, "output": 5.0}},
        "tickets": [{"id": "C1", "agent": "claude-code", "tier": "simple",
                     "prompt": "Do ticket C1."}]})
    replies = {"C1": [Reply([tool("Write", file_path="/workspace/c1.txt", content="by C1\n")],
                            usage=(120, 40, 0, 0)),
                      Reply([tool("Bash", command="echo bash >> /workspace/c1.txt")],
                            usage=(130, 30, 10, 5)),
                      done("C1 done.", usage=(140, 20, 0, 0))]}
    with FakeMessagesAPI(replies) as fake:
        env = {**_env(kube_cluster), "ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": fake.url}
        proc, doc = run_json("run", str(phase), "--repo", str(repo), "--engine",
                             "kubernetes", "--no-preflight", "--keep", env=env)
    assert proc.returncode == 0, proc.stderr
    [ticket] = doc["tickets"]
    assert ticket["status"] == "integrated", ticket
    assert git(repo, "show", f"{doc['target']}:c1.txt") == "by C1\nbash"
    [pod] = _of_run(kube_cluster, doc["run_id"])["pods"]
    if delivered == "image":
        assert pod.spec.containers[0].image == tag
        assert not any(v.name.startswith("files-") for v in pod.spec.volumes)
    cleaned = runner_cli("clean", doc["run_id"], "--repo", str(repo), env=_env(kube_cluster))
    assert cleaned.returncode == 0, cleaned.stdout + cleaned.stderr
    requests = fake.requests_for("C1")
    assert len(requests) >= 3 and all(r.headers["x-api-key"] == KEY for r in requests)
    assert ticket["tokens"] == 120 + 40 + 130 + 30 + 10 + 5 + 140 + 20   # metered here
    assert _gone_soon(kube_cluster, doc["run_id"])["pods"] == []


def test_a_relay_that_ended_is_said_in_the_tickets_log(tmp_path: Path,
                                                       kube_cluster: TestCluster) -> None:
    """The relay killed mid-ticket (as an out-of-memory kill would): the worker only sees
    its connections refused, so runner says why in the ticket's log."""
    repo = make_repo(tmp_path / "repo")
    phase = write_phase(tmp_path / "p.yaml", {
        "name": "relay-gone", "resources": RESOURCES,
        "tickets": [{"id": "R", "agent": "command", "prompt": "-",
                     "run": "touch started.txt; sleep 25; echo done > done.txt"}]})
    core, _ = _api(kube_cluster)
    killed: list[str] = []

    def kill_the_relay() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            for pod in core.list_namespaced_pod("default").items:
                labels = json.loads((pod.metadata.annotations or {}).get("runner.labels", "{}"))
                if labels.get("runner.ticket") == "R" and pod.status.phase == "Running":
                    time.sleep(3)
                    kube_cluster.sh("pkill -KILL -f 'TCP4-LISTEN:3128'", check=False)
                    killed.append(pod.metadata.name)
                    return
            time.sleep(0.2)

    killer = threading.Thread(target=kill_the_relay, daemon=True)
    killer.start()
    proc, doc = run_json("run", str(phase), "--repo", str(repo), "--engine", "kubernetes",
                         "--no-preflight", env=_env(kube_cluster))
    killer.join()
    assert killed, "the test never saw R's Pod running"
    assert proc.returncode == 0, proc.stderr
    log = (Path(doc["run_dir"]) / "logs" / "R.log").read_text()
    assert f"runner: the gateway's relay in Pod {killed[0]} cannot be reached" in log, log
    assert _of_run(kube_cluster, doc["run_id"])["pods"] == []


def test_a_storage_class_the_cluster_lacks_is_said_at_once(tmp_path: Path,
                                                          kube_cluster: TestCluster) -> None:
    repo = make_repo(tmp_path / "repo")
    phase = write_phase(tmp_path / "p.yaml", {
        "name": "no-class", "resources": RESOURCES,
        "kubernetes": {"workspaces": "claim", "storage_class": "fast-nvme"},
        "tickets": [{"id": "T", "agent": "script", "run": "true"}]})
    started = time.monotonic()
    proc, doc = run_json("run", str(phase), "--repo", str(repo), "--engine", "kubernetes",
                         "--no-preflight", env=_env(kube_cluster))
    [ticket] = doc["tickets"]
    assert ticket["status"] == "failed", ticket
    assert "kubernetes.storage_class 'fast-nvme': the cluster has no such StorageClass " \
           "(it has: runner-test-local)" in ticket["reason"], ticket
    assert time.monotonic() - started < 120         # not START_TIMEOUT's wait per ticket
    assert _of_run(kube_cluster, doc["run_id"]) == {"pods": [], "policies": [], "claims": []}


def test_a_runtime_class_the_cluster_lacks_is_refused_before_any_pod(
        tmp_path: Path, kube_cluster: TestCluster) -> None:
    repo = make_repo(tmp_path / "repo")
    phase = write_phase(tmp_path / "p.yaml", {
        "name": "no-runtime", "resources": RESOURCES, "runtime": "gvisor",
        "tickets": [{"id": "T", "agent": "script", "run": "true"}]})
    proc = runner_cli("run", str(phase), "--repo", str(repo), "--engine", "kubernetes",
                      "--no-preflight", env=_env(kube_cluster))
    assert proc.returncode == 3, proc.stderr
    assert "runtime: 'gvisor' is not a runtime of the engine (it has: none)" in proc.stderr


def test_a_pod_no_node_can_hold_is_said_before_and_fails_at_once(
        tmp_path: Path, kube_cluster: TestCluster) -> None:
    """The node has 2 CPUs: a worker asking for 3 is said by the dry run, and its Pod fails
    its ticket at once with the scheduler's reason (not "did not start in 300s")."""
    repo = make_repo(tmp_path / "repo")
    phase = write_phase(tmp_path / "p.yaml", {
        "name": "too-big", "resources": {**RESOURCES, "cpus": 3},
        "tickets": [{"id": "T", "agent": "script", "run": "true"}]})
    dry = runner_cli("run", str(phase), "--repo", str(repo), "--engine", "kubernetes",
                     "--dry-run", env=_env(kube_cluster))
    assert dry.returncode == 0, dry.stderr
    assert "no worker fits the engine" in dry.stdout and "cpus: 3" in dry.stdout, dry.stdout
    proc, doc = run_json("run", str(phase), "--repo", str(repo), "--engine", "kubernetes",
                         "--no-preflight", env=_env(kube_cluster))
    assert "no worker fits the engine" in proc.stderr
    [ticket] = doc["tickets"]
    assert ticket["status"] == "failed", ticket
    assert "cannot be scheduled: it asks for 3" in ticket["reason"], ticket
    assert "the scheduler: 0/1 nodes are available: 1 Insufficient cpu" in ticket["reason"]
    assert _of_run(kube_cluster, doc["run_id"])["pods"] == []


def test_a_projects_own_image_reaches_the_node_and_runs_its_tickets(tmp_path: Path,
                                                                    kube_cluster) -> None:
    """A cluster builds nothing: `runner images build --phase` builds the project's image
    here, as a run would, and prints its tag; the node gets it the way a user's nodes get
    any image (here `ctr import`; a registry elsewhere); then the phase runs on Pods."""
    repo = make_repo(tmp_path / "repo", {
        "Dockerfile": "FROM debian:bookworm-slim\nRUN echo project > /etc/project-mark\n"})
    phase = write_phase(tmp_path / "p.yaml", {
        "name": "own", "image": {"dockerfile": "repo/Dockerfile", "context": "repo"},
        "resources": RESOURCES,
        "tickets": [{"id": "A", "agent": "script", "run": "cat /etc/project-mark > mark.txt"}]})
    built = runner_cli("images", "build", "--phase", str(phase), "--engine", "kubernetes",
                       env=_env(kube_cluster))
    assert built.returncode == 0, built.stdout + built.stderr
    tag = built.stdout.strip().splitlines()[-1].removeprefix("image: ")
    assert tag.startswith("runner-project:")
    assert "on none of the cluster's nodes yet" in built.stdout + built.stderr
    kube_cluster.load(tag)
    _wait_until_a_node_reports(kube_cluster, tag)
    proc, doc = run_json("run", str(phase), "--repo", str(repo), "--engine", "kubernetes",
                         env=_env(kube_cluster))
    assert proc.returncode == 0, proc.stderr
    assert git(repo, "show", f"{doc['target']}:mark.txt") == "project"
    assert "building image" not in proc.stderr and "on none of" not in proc.stderr


def test_the_dependency_cache_serves_pods_through_their_relay(tmp_path: Path,
                                                               kube_cluster) -> None:
    """The cache's mirror on a Pod's gateway address: a file fetched upstream once for two
    Pods, by the hash its index published; the store stays on this machine."""
    from tests.fakes.package_index import PackageIndex, make_wheel

    with PackageIndex() as index:
        name, wheel = make_wheel("alpha", "1.0")
        sha = index.add_wheel("alpha", name, wheel)
        fetch = (f"m=http://127.0.0.1:3128/cache/pypi; curl -sf $m/simple/alpha/ > /dev/null && "
                 f"curl -sf $m/files/alpha/{sha}/{name} | sha256sum | cut -c1-64 > got-$RUNNER_TICKET")
        repo = make_repo(tmp_path / "repo")
        phase = write_phase(tmp_path / "p.yaml", {
            "name": "kube-cache", "concurrency": 2, "resources": RESOURCES,
            "cache": {"mirrors": {"pypi": f"{index.url}/simple/"}, "dir": str(tmp_path / "c")},
            "tickets": [{"id": t, "agent": "script", "run": fetch} for t in ("A", "B")]})
        proc, doc = run_json("run", str(phase), "--repo", str(repo), "--engine", "kubernetes",
                             env=_env(kube_cluster))
        assert proc.returncode == 0, proc.stderr
        assert index.hits[f"/files/{name}"] == 1
    for ticket in ("A", "B"):
        assert git(repo, "show", f"{doc['target']}:got-{ticket}") == sha
    assert sum(t["fetched"]["cache_requests"] + t["fetched"]["upstream_requests"]
               for t in doc["tickets"]) == 4
