"""What runner asks a Kubernetes cluster for, read off the manifests (no cluster): the Pod's
hardening, names and labels Kubernetes takes whatever runner's are, the run's NetworkPolicy,
image references as nodes list them, and an exec's status read exactly."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from runner.sandbox import CLAUDE_BINARY, Checkout, Durable, Limits, Mount, SandboxSpec
from runner.sandbox.kube.cluster import normalized_image
from runner.sandbox.kube.execs import StreamLost, exit_code
from runner.sandbox.kube.pods import (CHECKOUT, KEY, POD_USER, RUN, SANDBOX, claim_manifest,
                                      label_value, literal, pod_manifest, pod_name, policy_manifest,
                                      spec_labels)
from runner.sandbox.relay.script import RELAY_COMMAND
from runner.sandbox.relay.tunnel import announced_pids

DNS_1123 = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def _spec(**changes: object) -> SandboxSpec:
    base = dict(name="runner-20261202-010203-ab12-T_1", image="runner-worker:latest",
                env={"HOME": "/tmp"}, limits=Limits(cpus=1.5, memory="2g", pids=512),
                labels={"runner.run": "20261202-010203-ab12", "runner.ticket": "T_1/weird id",
                        "runner.run-dir": "/home/me/repo/.git/runner/x"},
                checkout=Checkout(name="T_1", branch="runner/p/T_1", start="abc",
                                  history=None, place="reruns/1"),  # type: ignore[arg-type]
                user="0:0")
    base.update(changes)
    return SandboxSpec(**base)  # type: ignore[arg-type]


def test_the_pod_carries_the_docker_backends_hardening() -> None:
    pod = pod_manifest(_spec(), run_id="20261202-010203-ab12")["spec"]
    assert pod["restartPolicy"] == "Never" and pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False
    assert pod["securityContext"] == {"runAsUser": POD_USER[0], "runAsGroup": POD_USER[1],
                                      "fsGroup": POD_USER[1], "runAsNonRoot": True,
                                      "seccompProfile": {"type": "RuntimeDefault"}}
    [worker] = pod["containers"]
    assert worker["securityContext"] == {"allowPrivilegeEscalation": False,
                                         "privileged": False, "readOnlyRootFilesystem": True,
                                         "capabilities": {"drop": ["ALL"]}}
    assert worker["resources"]["limits"] == {"cpu": "1500m", "memory": str(2 * 1024**3)}
    assert worker["resources"]["requests"] == worker["resources"]["limits"]
    mounts = {m["mountPath"]: m["name"] for m in worker["volumeMounts"]}
    assert mounts == {"/tmp": "tmp", "/workspace": "workspace", "/gradle-home": "gradle"}
    assert all("emptyDir" in v for v in pod["volumes"])
    # No container is root (Pod Security "restricted"): the volumes are the worker group's
    # (fsGroup), and git takes the root-owned checkout as safe.
    assert "initContainers" not in pod
    env = {e["name"]: e["value"] for e in worker["env"]}
    assert (env["GIT_CONFIG_COUNT"], env["GIT_CONFIG_KEY_0"], env["GIT_CONFIG_VALUE_0"]) == (
        "1", "safe.directory", "/workspace")
    assert "runtimeClassName" not in pod


def test_a_durable_checkout_is_a_claim_of_its_own_that_the_pod_mounts_twice() -> None:
    spec = _spec(durable=Durable("fast"), limits=Limits(cpus=1, memory="2g", pids=512,
                                                        disk=3 << 30))
    claim = claim_manifest(spec, run_id="r1")
    assert claim["kind"] == "PersistentVolumeClaim"
    assert claim["spec"] == {"accessModes": ["ReadWriteOnce"], "storageClassName": "fast",
                             "resources": {"requests": {"storage": str(6 << 30)}}}
    labels, annotations = claim["metadata"]["labels"], claim["metadata"]["annotations"]
    assert labels[RUN] == "r1" and labels[SANDBOX] == "claim"
    # Found as its Pods are: by the digest of the checkout it holds.
    assert annotations[KEY] == "reruns/1/T_1"
    assert labels[CHECKOUT] == pod_manifest(spec, run_id="r1")["metadata"]["labels"][CHECKOUT]
    # The cluster's default class when none is named.
    assert "storageClassName" not in claim_manifest(_spec(durable=Durable()),
                                                    run_id="r1")["spec"]

    pod = pod_manifest(spec, run_id="r1", claim="c-1")["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["checkout"] == {"name": "checkout",
                                   "persistentVolumeClaim": {"claimName": "c-1"}}
    assert "workspace" not in volumes and "gradle" not in volumes
    [worker] = pod["containers"]
    assert [m for m in worker["volumeMounts"] if m["name"] == "checkout"] == [
        {"name": "checkout", "mountPath": "/workspace", "subPath": "workspace"},
        {"name": "checkout", "mountPath": "/gradle-home", "subPath": "gradle"}]
    # Its two folders made by the worker's user first (the kubelet would make them root's).
    [folders] = pod["initContainers"]
    assert folders["command"] == ["mkdir", "-p", "/workspace/workspace", "/workspace/gradle"]
    assert "runAsUser" not in folders["securityContext"]      # the Pod's: the worker's


def test_a_file_of_this_machine_gets_a_directory_of_the_pods_own() -> None:
    """It cannot be mounted: the Pod gets an emptyDir where the provider sends it (the
    worker group's), and no path of this machine."""
    spec = _spec(files=(Mount(Path("/home/me/.local/claude"), CLAUDE_BINARY, read_only=True),))
    pod = pod_manifest(spec, run_id="r1")["spec"]
    [worker] = pod["containers"]
    assert {"name": "files-0", "mountPath": "/runner/claude"} in worker["volumeMounts"]
    assert {"name": "files-0", "emptyDir": {"sizeLimit": "2Gi"}} in pod["volumes"]
    assert "/home/me" not in json.dumps(pod)


def test_a_non_root_worker_keeps_its_uid_and_a_runtime_is_the_runtime_class() -> None:
    pod = pod_manifest(_spec(user="1234:99", runtime="gvisor"), run_id="r")["spec"]
    assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"],
            pod["securityContext"]["fsGroup"]) == (1234, 99, 99)
    assert pod["runtimeClassName"] == "gvisor"
    no_checkout = pod_manifest(_spec(checkout=None), run_id="r")["spec"]
    assert "initContainers" not in no_checkout
    assert [v["name"] for v in no_checkout["volumes"]] == ["tmp"]


def test_a_gateway_is_a_relay_beside_the_worker_that_shares_nothing_but_loopback() -> None:
    without = pod_manifest(_spec(), run_id="r")["spec"]
    assert [c["name"] for c in without["containers"]] == ["worker"]
    pod = pod_manifest(_spec(gateway=Path("/home/me/run/w1/gateway.sock")),
                       run_id="r")["spec"]
    worker, relay = pod["containers"]
    assert relay["name"] == "gateway" and relay["image"] == worker["image"]
    assert relay["securityContext"] == {
        "runAsUser": 65534, "runAsGroup": 65534, "runAsNonRoot": True,
        "allowPrivilegeEscalation": False, "privileged": False,
        "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}}
    # Its memory is exact; it requests a sliver of CPU and may burst to start connections.
    requests, limits = relay["resources"]["requests"], relay["resources"]["limits"]
    assert requests["memory"] == limits["memory"]
    assert int(requests["cpu"].rstrip("m")) < int(limits["cpu"].rstrip("m"))
    assert [m["mountPath"] for m in relay["volumeMounts"]] == ["/relay"]
    assert "/relay" not in {m["mountPath"] for m in worker["volumeMounts"]}
    # Nothing of this machine goes in: not the socket's path, not a mount of it.
    assert "/home/me" not in json.dumps(pod)


def test_a_command_reaches_the_container_as_runner_wrote_it() -> None:
    """Kubernetes expands $(NAME) in a container's command and takes $$ for $; a shell
    script's $$ and $(...) must arrive unchanged."""
    assert literal(["sh", "-c", "echo $$ $(id -u) $HOME"]) == \
        ["sh", "-c", "echo $$$$ $$(id -u) $$HOME"]
    relay = pod_manifest(_spec(gateway=Path("/g.sock")), run_id="r")["spec"]["containers"][1]
    assert relay["command"] == literal(RELAY_COMMAND)
    assert "$$" in shlex.join(RELAY_COMMAND)          # the child names its socket by its pid


@pytest.mark.parametrize("name", ["runner-20261202-010203-ab12-T_1", "UPPER..and__Under",
                                  "é" * 80, "-", "a" * 300])
def test_pod_names_are_dns_names_and_never_meet(name: str) -> None:
    made = pod_name(name)
    assert DNS_1123.fullmatch(made) and len(made) <= 63, made
    assert pod_name(name + "x") != made


def test_labels_kubernetes_refuses_travel_as_annotations() -> None:
    meta = pod_manifest(_spec(), run_id="20261202-010203-ab12")["metadata"]
    assert meta["labels"][RUN] == "20261202-010203-ab12"
    assert "runner.ticket" not in meta["labels"] and "runner.run-dir" not in meta["labels"]
    assert all(label_value(v) for v in meta["labels"].values())
    assert spec_labels(meta["annotations"]) == dict(_spec().labels)
    assert meta["annotations"][KEY] == "reruns/1/T_1"
    assert re.fullmatch(r"[0-9a-f]{16}", meta["labels"][CHECKOUT])
    assert spec_labels({"runner.labels": "not json"}) == {}


def test_the_policy_selects_the_runs_pods_and_allows_nothing() -> None:
    policy = policy_manifest("20261202-010203-ab12")
    assert policy["spec"] == {"podSelector": {"matchLabels": {RUN: "20261202-010203-ab12"}},
                              "policyTypes": ["Ingress", "Egress"], "ingress": [],
                              "egress": []}


@pytest.mark.parametrize("given, listed", [
    ("runner-worker:latest", "docker.io/library/runner-worker:latest"),
    ("runner-worker", "docker.io/library/runner-worker:latest"),
    ("me/worker:1", "docker.io/me/worker:1"),
    ("registry.local:5000/w:2", "registry.local:5000/w:2"),
    ("localhost/w", "localhost/w:latest"),
    ("ghcr.io/o/w@sha256:" + "a" * 64, "ghcr.io/o/w@sha256:" + "a" * 64)])
def test_image_references_as_nodes_list_them(given: str, listed: str) -> None:
    assert normalized_image(given) == listed


def test_an_exec_status_is_read_exactly() -> None:
    assert exit_code(b'{"status":"Success"}') == 0
    failure = {"status": "Failure", "reason": "NonZeroExitCode",
               "details": {"causes": [{"reason": "ExitCode", "message": "137"}]}}
    assert exit_code(json.dumps(failure).encode()) == 137
    for lost in (b"", b"not json", b'{"status":"Failure","message":"container not found"}'):
        with pytest.raises(StreamLost):
            exit_code(lost)


def test_announcements_are_read_whole_across_chunks() -> None:
    """The relay's pids come as lines, cut anywhere by the stream; the reader's heartbeat (an
    empty line) and anything that is not a pid are no pid."""
    pids, rest = announced_pids(b"", b"12\n3")
    assert (pids, rest) == ([b"12"], b"3")
    pids, rest = announced_pids(rest, b"4\n\n" + b"x" * 100 + b"\n56 \n7")
    assert (pids, rest) == ([b"34"], b"7")
    _, rest = announced_pids(b"", b"9" * 1000)          # never a line: nothing kept grows
    assert len(rest) <= 16


ALLOWED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                   "persistentVolumeClaim", "projected", "secret", "name"}


def _restricted_problems(pod: dict) -> list[str]:
    """What of the Pod Security Standards' "restricted" level ``pod`` breaks (its rules, as
    documented for Pods)."""
    spec, problems = pod["spec"], []
    context = spec.get("securityContext", {})
    if any(spec.get(key) for key in ("hostNetwork", "hostPID", "hostIPC")):
        problems.append("host namespaces")
    for volume in spec.get("volumes", []):
        if set(volume) - ALLOWED_VOLUMES:
            problems.append(f"volume {volume['name']}: {sorted(set(volume) - ALLOWED_VOLUMES)}")
    if context.get("seccompProfile", {}).get("type") not in ("RuntimeDefault", "Localhost"):
        problems.append("no seccomp profile")
    for container in spec.get("initContainers", []) + spec["containers"]:
        own = container.get("securityContext", {})
        name = container["name"]
        if own.get("privileged"):
            problems.append(f"{name}: privileged")
        if own.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: may escalate")
        caps = own.get("capabilities", {})
        if "ALL" not in caps.get("drop", []) or set(caps.get("add", [])) - {"NET_BIND_SERVICE"}:
            problems.append(f"{name}: capabilities {caps}")
        if not own.get("runAsNonRoot", context.get("runAsNonRoot")):
            problems.append(f"{name}: may run as root")
        if own.get("runAsUser", context.get("runAsUser")) == 0:
            problems.append(f"{name}: runs as uid 0")
        if any(port.get("hostPort") for port in container.get("ports", [])):
            problems.append(f"{name}: host port")
    return problems


@pytest.mark.parametrize("changes, claim", [
    ({}, None), ({}, "c-1"), ({"gateway": Path("/run/gw.sock")}, None),
    ({"files": (Mount(Path("/x/claude"), CLAUDE_BINARY, read_only=True),)}, None),
    ({"checkout": None}, None), ({"user": "1234:99"}, "c-2")])
def test_every_pod_meets_pod_security_restricted(changes: dict, claim: str | None) -> None:
    pod = pod_manifest(_spec(**changes), run_id="r", claim=claim)
    assert _restricted_problems(pod) == []
    # The check itself finds what it looks for.
    rooted = json.loads(json.dumps(pod))
    rooted["spec"]["containers"][0]["securityContext"]["runAsUser"] = 0
    assert any("runs as uid 0" in said for said in _restricted_problems(rooted))
