"""What runner asks a Kubernetes cluster for, as plain manifests: the Pod of one sandbox, with
the Docker backend's hardening in Kubernetes terms, and the NetworkPolicy that shuts the run's
Pods off from everything.

A checkout that must outlive its Pod (SandboxSpec.durable) is on a PersistentVolumeClaim of
its own, labelled as its Pods are.

Labels in Kubernetes are restricted (63 characters of [A-Za-z0-9._-]); runner's labels carry
paths and ticket ids. So every label of a spec is an annotation, verbatim, and only the ones
a selector needs are labels too: the run, and a digest of the checkout a Pod holds.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from collections.abc import Mapping
from typing import Any

from runner.sandbox import GRADLE_HOME, RELAY_DIR, WORKSPACE, SandboxSpec
from runner.sandbox.relay.script import RELAY_COMMAND
from runner.units import size_in_bytes

CONTAINER = "worker"          # the worker's container (the one a Pod has without a gateway)
RUN = "runner.run"            # label: the run (every object runner makes carries it)
SANDBOX = "runner.sandbox"    # label: what the object is (pod | claim | policy)
CHECKOUT = "runner.checkout"  # label: a digest of "<place>/<name>" of the checkout it holds
ASIDE = "runner.aside"        # label: a checkout set aside (its Pod stays through a clean)
LABELS = "runner.labels"      # annotation: the spec's labels, as JSON
KEY = "runner.checkout-key"   # annotation: "<place>/<name>" of the checkout it holds
NAME = "runner.name"          # annotation: the sandbox's name, as runner gave it
# The uid:gid a Pod runs as when runner runs as root: the Pod has no host disk to match, and
# exec cannot change user, so every command runs as this one.
POD_USER = (1000, 1000)
RELAY = "gateway"             # the relay's container, in a Pod that has the gateway
RELAY_USER = 65534            # the gateway's relay: nobody, neither the worker's uid nor root
TMP_SIZE = "1Gi"              # as the Docker backend's /tmp
FILES_SIZE = "2Gi"            # what a directory of files carried in may hold (Claude Code: 0.4)
# The container's own process: a shell that reaps whatever the worker orphans (bash waits for
# any child) and never exits on its own. As pid 1 of the container with no signal handler
# of its own, it gets no signal the worker sends it, so a reset (kill -KILL -1, as the
# worker) ends everything else, and the worker cannot end the Pod.
KEEP_UP = ["bash", "-c", "while :; do sleep 3600 & wait $!; done"]
# A volume's directory belongs to root (a Pod's user cannot be given it without a root
# container, which Pod Security "restricted" refuses), and git refuses a repo that is not its
# user's: the worker's checkout is declared safe, for every git in the Pod (command-line
# scope, which git honours for safe.directory). Nobody else writes there.
OWNED_ELSEWHERE = {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "safe.directory",
                   "GIT_CONFIG_VALUE_0": WORKSPACE}

_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")


def label_value(value: str) -> str | None:
    """``value`` if Kubernetes takes it as a label value, else None."""
    return value if len(value) <= 63 and _LABEL_VALUE.fullmatch(value) else None


def checkout_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def pod_name(name: str) -> str:
    """A DNS-1123 name for the sandbox ``name`` (any string runner makes): lower case, the
    rest folded to "-", with a digest of the whole so that two names never meet."""
    slug = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:50].strip("-") or "sandbox"
    return f"{slug}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def pod_user(user: str) -> tuple[int, int]:
    """The uid:gid a Pod runs as: the worker's, unless that is root (then POD_USER)."""
    uid, gid = (int(part) for part in user.split(":"))
    return POD_USER if uid == 0 else (uid, gid)


def memory_quantity(memory: str) -> str:
    """A Docker-style size ("2g": binary units) as a Kubernetes quantity in bytes."""
    return str(size_in_bytes(memory))


def _metadata(spec: SandboxSpec, run_id: str, kind: str) -> dict[str, Any]:
    """The name, labels and annotations of ``spec``'s object of ``kind`` (pod, claim)."""
    labels = {RUN: run_id, SANDBOX: kind}
    annotations = {LABELS: json.dumps(dict(spec.labels), sort_keys=True), NAME: spec.name}
    for key, value in spec.labels.items():
        if label_value(value) and key not in labels:
            labels[key] = value
    if spec.checkout is not None:
        key = f"{spec.checkout.place}/{spec.checkout.name}"
        labels[CHECKOUT] = checkout_digest(key)
        annotations[KEY] = key
    return {"name": pod_name(spec.name), "labels": labels, "annotations": annotations}


def claim_manifest(spec: SandboxSpec, *, run_id: str) -> dict[str, Any]:
    """The PersistentVolumeClaim that keeps ``spec``'s checkout past its Pod (spec.durable):
    its workspace and Gradle home, each in a directory of it. Its size is twice the disk
    budget, as each emptyDir's bound."""
    assert spec.durable is not None and spec.checkout is not None
    claim: dict[str, Any] = {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": _metadata(spec, run_id, "claim"),
        "spec": {"accessModes": ["ReadWriteOnce"],
                 "resources": {"requests": {"storage": str(2 * (spec.limits.disk or 10 << 30))}}},
    }
    if spec.durable.storage_class:
        claim["spec"]["storageClassName"] = spec.durable.storage_class
    return claim


def pod_manifest(spec: SandboxSpec, *, run_id: str, command: list[str] | None = None,
                 claim: str | None = None) -> dict[str, Any]:
    """The Pod of ``spec``: one container over emptyDir volumes (its workspace and Gradle home
    live as long as the Pod) or over ``claim`` (they outlive it), hardened as the Docker
    backend's containers are. ``command`` replaces the keeper (a Pod that runs one command
    and ends)."""
    uid, gid = pod_user(spec.user)
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {"sizeLimit": TMP_SIZE}}]
    mounts = [{"name": "tmp", "mountPath": "/tmp"}]
    if claim is not None:
        volumes.append({"name": "checkout", "persistentVolumeClaim": {"claimName": claim}})
        mounts += [{"name": "checkout", "mountPath": WORKSPACE, "subPath": "workspace"},
                   {"name": "checkout", "mountPath": GRADLE_HOME, "subPath": "gradle"}]
    elif spec.checkout is not None:
        # The disk budget is watched (du in the Pod, as on a remote engine); twice it is the
        # node's own backstop, should the watch not be there to stop it.
        bound = ({"sizeLimit": str(2 * spec.limits.disk)} if spec.limits.disk else {})
        volumes += [{"name": "workspace", "emptyDir": dict(bound)},
                    {"name": "gradle", "emptyDir": dict(bound)}]
        mounts += [{"name": "workspace", "mountPath": WORKSPACE},
                   {"name": "gradle", "mountPath": GRADLE_HOME}]
    # Files of this machine's (spec.files) cannot be mounted: each directory of them is an
    # emptyDir the provider sends them into once the Pod runs (podlife.send_files).
    for number, folder in enumerate(files_folders(spec)):
        volumes.append({"name": f"files-{number}", "emptyDir": {"sizeLimit": FILES_SIZE}})
        mounts.append({"name": f"files-{number}", "mountPath": folder})
    limits = {"cpu": f"{int(spec.limits.cpus * 1000)}m",
              "memory": memory_quantity(spec.limits.memory)}
    pod: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": _metadata(spec, run_id, "pod"),
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,      # no variables naming the cluster's Services
            "terminationGracePeriodSeconds": 0,
            "dnsPolicy": "Default",
            # fsGroup: volumes that take it (emptyDir, most CSI drivers) are made the
            # worker group's, writable, so no container need be root to give them over.
            "securityContext": {"runAsUser": uid, "runAsGroup": gid, "fsGroup": gid,
                                "runAsNonRoot": uid != 0,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "volumes": volumes,
            "containers": [{
                "name": CONTAINER, "image": spec.image, "imagePullPolicy": "IfNotPresent",
                "command": literal(command or KEEP_UP), "workingDir": spec.workdir,
                "env": [{"name": name, "value": literal([value])[0]}
                        for name, value in {**OWNED_ELSEWHERE, **spec.env}.items()],
                "volumeMounts": mounts,
                # Requests equal to limits: the scheduler places it where they fit.
                "resources": {"requests": dict(limits), "limits": limits},
                "securityContext": {"allowPrivilegeEscalation": False, "privileged": False,
                                    "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]}},
            }],
        },
    }
    if claim is not None:
        pod["spec"]["initContainers"] = [_claim_folders(spec.image)]
    if spec.gateway is not None:      # its way out: the relay beside it (relay/script.py)
        pod["spec"]["containers"].append(_relay(spec.image))
        volumes.append({"name": "relay", "emptyDir": {"sizeLimit": "16Mi"}})
    if spec.runtime:
        pod["spec"]["runtimeClassName"] = spec.runtime
    return pod


def files_folders(spec: SandboxSpec) -> list[str]:
    """The directories of the files carried into ``spec``'s Pod."""
    return sorted({posixpath.dirname(mount.target) for mount in spec.files})


def _claim_folders(image: str) -> dict[str, Any]:
    """The claim's two folders, made by the worker's user before the worker's subPath mounts
    need them: the kubelet would make missing ones root's, which the worker cannot write
    (the claim's root is the worker group's, by fsGroup)."""
    return {
        "name": "folders", "image": image, "imagePullPolicy": "IfNotPresent",
        # The claim's root where a mount point the image has is (a Pod's runtime makes none
        # in a read-only root).
        "command": ["mkdir", "-p", f"{WORKSPACE}/workspace", f"{WORKSPACE}/gradle"],
        "volumeMounts": [{"name": "checkout", "mountPath": WORKSPACE}],
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"},
                      "limits": {"cpu": "100m", "memory": "32Mi"}},
        "securityContext": {"allowPrivilegeEscalation": False, "privileged": False,
                            "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}},
    }


def _relay(image: str) -> dict[str, Any]:
    """The gateway's relay, from the worker's image (socat), hardened as the worker is."""
    return {
        "name": RELAY, "image": image, "imagePullPolicy": "IfNotPresent",
        "command": literal(RELAY_COMMAND),
        "volumeMounts": [{"name": "relay", "mountPath": RELAY_DIR}],
        # Requests what it needs idle; its limit lets each new connection's processes start
        # in a tenth of a second rather than half a second. The worker's own stay exact.
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"},
                      "limits": {"cpu": "500m", "memory": "64Mi"}},
        "securityContext": {"runAsUser": RELAY_USER, "runAsGroup": RELAY_USER,
                            "runAsNonRoot": True, "allowPrivilegeEscalation": False,
                            "privileged": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]}},
    }


def literal(argv: list[str]) -> list[str]:
    """``argv`` as a container's command (or variables' values) that Kubernetes passes on
    as they are: it expands $(NAME) there and takes $$ for $."""
    return [arg.replace("$", "$$") for arg in argv]


def policy_name(run_id: str) -> str:
    return pod_name(f"runner-{run_id}-isolated")


def policy_manifest(run_id: str) -> dict[str, Any]:
    """Every Pod of the run: no traffic in, none out (no rule allows any)."""
    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": policy_name(run_id), "labels": {RUN: run_id, SANDBOX: "policy"}},
        "spec": {"podSelector": {"matchLabels": {RUN: run_id}},
                 "policyTypes": ["Ingress", "Egress"], "ingress": [], "egress": []},
    }


def spec_labels(annotations: Mapping[str, str] | None) -> dict[str, str]:
    """The labels runner gave a Pod's spec, read back from its annotations."""
    try:
        labels = json.loads((annotations or {}).get(LABELS, "{}"))
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}
