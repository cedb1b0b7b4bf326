"""A real one-node Kubernetes cluster for tests: Debian's source package built here, run in a
container of the host's engine.

The binaries (kube-apiserver, kubelet, kube-scheduler, kube-controller-manager, and the Pods'
static pause) are built
once per machine by ``kubenode/build.sh`` and cached outside the clone, keyed by the source
package's version. The node is one container (``kubenode/``: etcd, the API server, the
scheduler, containerd and the kubelet, Debian's packages but for the binaries, mounted
read-only): its address on the host's bridge is the node's, a test host of ours, and the API
server is published on 127.0.0.1 only. A Pod's eth0 is a wire to nowhere (``void.conflist``,
``node.sh``): containerd wants an address for each Pod, and a Pod must reach nothing. The node
runs with the remote engine's capabilities (``dind.py``: this machine refuses
``--privileged``); its Pods' cgroups live under /<its name>, removed with it.

Its controller-manager runs the volume controllers alone: workspace claims bind to local
volumes over directories of the node (the default StorageClass, ``runner-test-local``, and
its volumes are made here; each is used once). Every Pod is held to Pod Security
"restricted" (a PodSecurityPolicy of that level, the only one). What it lacks, on purpose:
the other controllers (the node's not-ready taint is lifted and the default ServiceAccount
made here, as they would; nothing evicts a lost node's Pods) and NetworkPolicy enforcement
(no CNI that enforces it: the network to nowhere is what isolates Pods).

    python3 -m tests.engines.kube up      start one; prints its KUBECONFIG (to try it by hand)
    python3 -m tests.engines.kube down    remove every cluster this module started

Measured here (2 cores): the build 9 min once per machine (four binaries); the node image
~40 s once; a cluster ready in ~35 s; runner-worker:latest (426 MB) imported in 16-27 s.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors
from docker.models.containers import Container

from runner.records.events import EventCollector
from runner.sandbox.images import base_image, image_present, stream_build
from tests.engines.dind import exec_with_stdin, remove_cgroups

NODE_DIR = Path(__file__).resolve().parent / "kubenode"
BUILD = NODE_DIR / "build.sh"
IMAGE_FILES = ("Dockerfile", "node.sh", "containerd.toml", "void.conflist")
IMAGE_REPO = "runner-test-kubenode"
PAUSE_IMAGE = "runner.test/pause:1"     # containerd.toml and node.sh name it
LABEL = "runner.test-cluster"           # value: the cluster's id; tests remove exactly theirs
NODE_LABEL = "runner.test-node"         # a node beyond the first: its name
PORT = "6443/tcp"
STATE = "/var/lib/kube"
STORAGE_CLASS = "runner-test-local"  # the default class: local volumes, directories of the node
LOCAL_VOLUMES = "/var/lib/runner-local"      # node.sh makes pv-00 … there
LOCAL_VOLUME_COUNT = 96                      # claims a session may make (none is reused)
# Pod Security "restricted", as a PodSecurityPolicy (1.20 has no Pod Security admission): the
# policy the Pod Security Standards document for that level, the only one there is, so every
# Pod of every user must meet it (the namespace is labelled to enforce it too, for clusters
# whose admission reads the label).
RESTRICTED = {
    "apiVersion": "policy/v1beta1", "kind": "PodSecurityPolicy",
    "metadata": {"name": "restricted", "annotations": {
        "seccomp.security.alpha.kubernetes.io/allowedProfileNames": "runtime/default",
        "seccomp.security.alpha.kubernetes.io/defaultProfileName": "runtime/default"}},
    "spec": {"privileged": False, "allowPrivilegeEscalation": False,
             "requiredDropCapabilities": ["ALL"],
             "volumes": ["configMap", "emptyDir", "projected", "secret", "downwardAPI", "csi",
                         "persistentVolumeClaim", "ephemeral"],
             "hostNetwork": False, "hostIPC": False, "hostPID": False,
             "runAsUser": {"rule": "MustRunAsNonRoot"}, "seLinux": {"rule": "RunAsAny"},
             "supplementalGroups": {"rule": "MustRunAs", "ranges": [{"min": 1, "max": 65535}]},
             "fsGroup": {"rule": "MustRunAs", "ranges": [{"min": 1, "max": 65535}]},
             "readOnlyRootFilesystem": False}}


class ClusterFailed(RuntimeError):
    """The test cluster did not come up (the message carries its logs)."""


def binaries() -> Path:
    """The directory of the built binaries: built now when this machine has none."""
    done = subprocess.run(["bash", str(BUILD)], stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise ClusterFailed(f"{BUILD} failed (exit {done.returncode}); its output is above")
    return Path(done.stdout.strip().splitlines()[-1])


def node_image(host: docker.DockerClient) -> str:
    digest = hashlib.sha256()
    for name in IMAGE_FILES:
        digest.update((NODE_DIR / name).read_bytes())
    tag = f"{IMAGE_REPO}:{digest.hexdigest()[:16]}"
    if not image_present(host, tag):
        sink = EventCollector()
        stream_build(host, tag, context=NODE_DIR, target=None,
                     buildargs={"BASE": base_image(host, sink, offline=True)}, sink=sink)
    return tag


def pause_image(host: docker.DockerClient, bin_dir: Path) -> str:
    """The Pods' sandbox image: the static pause binary alone, in a scratch image."""
    if not image_present(host, PAUSE_IMAGE):
        with tempfile.TemporaryDirectory() as context:
            (Path(context) / "pause").write_bytes((bin_dir / "pause").read_bytes())
            (Path(context) / "pause").chmod(0o755)
            (Path(context) / "Dockerfile").write_text(
                'FROM scratch\nCOPY pause /pause\nENTRYPOINT ["/pause"]\n')
            stream_build(host, PAUSE_IMAGE, context=Path(context), target=None, buildargs={},
                         sink=EventCollector())
    return PAUSE_IMAGE


@dataclass
class TestCluster:
    id: str
    host: docker.DockerClient
    container: Container
    volume: str
    url: str
    kubeconfig: Path                 # on the host, for runner and the tests
    timings: dict[str, float] = field(default_factory=dict)
    workers: list[Container] = field(default_factory=list)   # nodes beyond the first

    __test__ = False      # not a test class, whatever its name

    @property
    def name(self) -> str:
        return self.container.name

    def sh(self, script: str, *, check: bool = True) -> str:
        code, out = self.container.exec_run(["bash", "-c", script])
        text = out.decode("utf-8", "replace")
        if check and code != 0:
            raise ClusterFailed(f"in the node, {script!r} exited {code}: {text[-2000:]}")
        return text

    def load(self, image: str) -> float:
        """Import ``image`` from the host's engine into every node's containerd (streamed:
        `docker save` into `ctr import`); seconds taken."""
        started = time.monotonic()
        for node in [self.container, *self.workers]:
            _import(self.host, node, image)
        self.timings[f"load {image}"] = took = time.monotonic() - started
        return took

    def kill_node(self, name: str) -> None:
        """A node beyond the first dies at once (its kubelet and its Pods with it); what it
        holds (its volumes' directories, its images) stays for start_node()."""
        node = self._worker(name)
        node.kill()
        node.wait()

    def start_node(self, name: str) -> None:
        self._worker(name).start()

    def _worker(self, name: str) -> Container:
        return next(node for node in self.workers if node.labels.get(NODE_LABEL) == name)

    def stop_apiserver(self) -> None:
        """The API server dies (SIGKILL); the node, its kubelet and its Pods go on."""
        self.sh("pkill -KILL -x kube-apiserver; "
                "while pgrep -x kube-apiserver >/dev/null; do sleep 0.1; done")

    def start_apiserver(self, timeout: float = 60) -> None:
        self.container.exec_run(["setsid", "/usr/local/bin/node.sh", "apiserver"], detach=True)
        self.wait_ready(timeout)

    def answers(self) -> bool:
        from kubernetes import client, config

        try:
            api = config.new_client_from_config(config_file=str(self.kubeconfig))
            client.VersionApi(api).get_code(_request_timeout=5)
            return True
        except Exception:     # noqa: BLE001 - not answering, whatever it says
            return False

    def wait_ready(self, timeout: float = 120) -> None:
        """Until the API answers, the node is Ready and the default ServiceAccount exists."""
        from kubernetes import client, config

        deadline = time.monotonic() + timeout
        last = "nothing yet"
        while time.monotonic() < deadline:
            self.container.reload()
            if self.container.status != "running":
                raise ClusterFailed(f"the node exited: {self.logs()}")
            try:
                api = config.new_client_from_config(config_file=str(self.kubeconfig))
                core = client.CoreV1Api(api)
                nodes = core.list_node(_request_timeout=5).items
                ready = [n for n in nodes for c in n.status.conditions or []
                         if c.type == "Ready" and c.status == "True"]
                if ready:
                    _as_controllers_would(api, ready)
                    return
                last = f"nodes {[n.metadata.name for n in nodes]} not Ready"
            except Exception as e:     # noqa: BLE001 - not up yet, whatever it says
                last = f"{e.__class__.__name__}: {str(e)[:200]}"
            time.sleep(0.3)
        raise ClusterFailed(f"the cluster was not ready in {timeout:.0f}s ({last}): "
                            f"{self.logs()}")

    def logs(self, tail: int = 25) -> str:
        self.container.reload()
        if self.container.status != "running":     # node.sh printed them as it ended
            return self.container.logs(tail=200).decode("utf-8", "replace")
        return self.sh(f"for f in /var/log/kube/*.log; do echo \"== $f\"; tail -n {tail} \"$f\";"
                       " done", check=False)

    def remove(self) -> None:
        mine = {"label": f"{LABEL}={self.id}"}
        for container in self.host.containers.list(all=True, filters=mine):
            container.remove(force=True, v=True)
        for volume in self.host.volumes.list(filters=mine):
            volume.remove(force=True)
        for name in [self.name, *(node.name for node in self.workers)]:
            remove_cgroups(name)
        self.kubeconfig.unlink(missing_ok=True)


def _as_controllers_would(api: object, ready: list) -> None:
    """What the controllers not run here would do: lift the not-ready taint the kubelet
    registers its node with, and make the namespace's default ServiceAccount (Pods name it
    whether they mount its token or not); and what an admin would: Pod Security
    "restricted" for every Pod, and a default StorageClass of local volumes over the
    directories node.sh made (they take the Pods' fsGroup, as most CSI drivers' do)."""
    from kubernetes import client, dynamic
    from kubernetes.client.exceptions import ApiException

    core = client.CoreV1Api(api)
    for node in ready:
        if node.spec.taints:
            core.patch_node(node.metadata.name, {"spec": {"taints": None}})
    policy = dynamic.DynamicClient(api).resources.get(api_version="policy/v1beta1",
                                                      kind="PodSecurityPolicy")
    try:
        policy.create(body=RESTRICTED)
    except dynamic.exceptions.ConflictError:
        pass
    core.patch_namespace("default", {"metadata": {"labels": {
        "pod-security.kubernetes.io/enforce": "restricted"}}})
    made = [(core.create_namespaced_service_account, ("default",),
             {"metadata": {"name": "default"}}),
            (client.StorageV1Api(api).create_storage_class, (), {
                "metadata": {"name": STORAGE_CLASS, "annotations": {
                    "storageclass.kubernetes.io/is-default-class": "true"}},
                "provisioner": "kubernetes.io/no-provisioner",
                "volumeBindingMode": "WaitForFirstConsumer"})]
    made += [(core.create_persistent_volume, (), {
        "metadata": {"name": f"runner-test-local-{host}-{i:02d}"},
        "spec": {"capacity": {"storage": "1Ti"}, "accessModes": ["ReadWriteOnce"],
                 "persistentVolumeReclaimPolicy": "Retain", "storageClassName": STORAGE_CLASS,
                 "local": {"path": f"{LOCAL_VOLUMES}/pv-{i:02d}"},
                 "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                     {"key": "kubernetes.io/hostname", "operator": "In",
                      "values": [host]}]}]}}}})
        for host in sorted({node.metadata.labels["kubernetes.io/hostname"] for node in ready})
        for i in range(LOCAL_VOLUME_COUNT)]
    for create, args, body in made:
        try:
            create(*args, body)
        except ApiException as e:
            if e.status != 409:
                raise


def _import(host: docker.DockerClient, node: Container, image: str) -> None:
    saved = host.images.get(image).save(chunk_size=1 << 20, named=image)
    code, out, err = exec_with_stdin(host.api, node.id,
                                     ["ctr", "-n", "k8s.io", "images", "import", "-"], saved)
    if code != 0:
        raise ClusterFailed(f"ctr import {image} into {node.name} exited {code}: "
                            f"{(out + err)[-1000:]!r}")


def _node_config(host: docker.DockerClient, bin_dir: Path, volume: str,
                 **more: Any) -> dict[str, Any]:
    """A node's container: the remote engine's capabilities (dind.py), the host's cgroups,
    the binaries read-only, ``volume`` its containerd's store."""
    config = host.api.create_host_config(
        init=True, cap_add=["ALL"], cap_drop=["SYS_RESOURCE"],   # --privileged is refused
        security_opt=["seccomp=unconfined", "apparmor=unconfined"],
        devices=["/dev/kmsg:/dev/kmsg:r"], device_cgroup_rules=["a *:* rwm"],
        binds={"/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"},
               str(bin_dir): {"bind": "/opt/kube", "mode": "ro"},
               volume: {"bind": "/var/lib/containerd", "mode": "rw"}},
        tmpfs={"/run": "rw,exec"}, **more)
    config.update(MaskedPaths=[], ReadonlyPaths=[])
    return config


def add_node(cluster: TestCluster, name: str = "node-2", timeout: float = 120) -> None:
    """A second node, joined to the cluster's API server with the token the first node made
    for it, the cluster's images imported, Ready."""
    from kubernetes import client, config

    first = cluster.container
    first.reload()
    address = first.attrs["NetworkSettings"]["IPAddress"]
    token = cluster.sh(f"cat {STATE}/{name}.token").strip()
    labels = {LABEL: cluster.id, NODE_LABEL: name}
    container_name = f"{cluster.name}-{name}"
    volume = cluster.host.volumes.create(name=container_name, labels=labels).name
    made = cluster.host.api.create_container(
        first.image.id, name=container_name, labels=labels,
        host_config=_node_config(cluster.host, binaries(), volume),
        environment={"NODE_NAME": name, "CGROUP_ROOT": container_name,
                     "LOCAL_VOLUME_COUNT": str(LOCAL_VOLUME_COUNT),
                     "JOIN_SERVER": f"https://{address}:6443", "JOIN_TOKEN": token})
    node = cluster.host.containers.get(made["Id"])
    cluster.workers.append(node)
    node.start()
    _import(cluster.host, node, PAUSE_IMAGE)
    api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [n for n in client.CoreV1Api(api).list_node().items if n.metadata.name == name]
        if found and any(c.type == "Ready" and c.status == "True"
                         for c in found[0].status.conditions or []):
            _as_controllers_would(api, found)
            return
        time.sleep(0.5)
    raise ClusterFailed(f"node {name} was not Ready in {timeout:.0f}s: "
                        f"{node.logs(tail=60).decode('utf-8', 'replace')}")


def start_cluster(host: docker.DockerClient, *, timeout: float = 120,
                  nodes: int = 1) -> TestCluster:
    started = time.monotonic()
    bin_dir = binaries()
    image = node_image(host)
    pause = pause_image(host, bin_dir)
    timings = {"images": time.monotonic() - started}
    id_ = uuid.uuid4().hex[:12]
    name, labels = f"runner-test-cluster-{id_}", {LABEL: id_}
    volume = host.volumes.create(name=name, labels=labels).name
    try:
        config = _node_config(host, bin_dir, volume,
                              port_bindings={PORT: ("127.0.0.1", None)})
        made = host.api.create_container(
            image, name=name, labels=labels, host_config=config, ports=[6443],
            environment={"NODE_NAME": "node", "CGROUP_ROOT": name,
                         "LOCAL_VOLUME_COUNT": str(LOCAL_VOLUME_COUNT),
                         **({"NODE_LIFECYCLE": "1"} if nodes > 1 else {})})
        container = host.containers.get(made["Id"])
        container.start()
        container.reload()
        port = container.ports[PORT][0]["HostPort"]
        kubeconfig = Path(tempfile.gettempdir()) / f"{name}.kubeconfig"
        cluster = TestCluster(id=id_, host=host, container=container, volume=volume,
                              url=f"https://127.0.0.1:{port}", kubeconfig=kubeconfig)
    except BaseException:
        for container in host.containers.list(all=True, filters={"label": f"{LABEL}={id_}"}):
            container.remove(force=True)
        host.volumes.get(volume).remove(force=True)
        raise
    try:
        _write_kubeconfig(cluster)
        cluster.load(pause)
        cluster.wait_ready(timeout)
        for number in range(2, nodes + 1):
            add_node(cluster, f"node-{number}", timeout)
        cluster.timings.update(timings, start=time.monotonic() - started - timings["images"])
        return cluster
    except BaseException:
        cluster.remove()
        raise


def _write_kubeconfig(cluster: TestCluster) -> None:
    """The node's admin kubeconfig, pointed at the published port (it is written as the node
    starts: wait for it)."""
    for _ in range(100):
        text = cluster.sh(f"cat {STATE}/admin.kubeconfig 2>/dev/null", check=False)
        if "token" in text:
            break
        time.sleep(0.1)
    else:
        raise ClusterFailed(f"the node wrote no kubeconfig: {cluster.logs()}")
    cluster.kubeconfig.write_text(text.replace("https://127.0.0.1:6443", cluster.url))
    cluster.kubeconfig.chmod(0o600)


@contextmanager
def running_cluster(host: docker.DockerClient, nodes: int = 1) -> Iterator[TestCluster]:
    cluster = start_cluster(host, nodes=nodes)
    try:
        yield cluster
    finally:
        cluster.remove()


def main(argv: list[str]) -> int:
    host = docker.from_env()
    if argv[:1] == ["up"]:
        cluster = start_cluster(host)
        print(f"KUBECONFIG={cluster.kubeconfig}  # `python3 -m tests.engines.kube down` "
              "removes it")
        return 0
    if argv[:1] == ["down"]:
        for container in host.containers.list(all=True, filters={"label": LABEL}):
            id_ = container.labels[LABEL]
            TestCluster(id=id_, host=host, container=container, volume=container.name,
                        url="", kubeconfig=Path(tempfile.gettempdir())
                        / f"{container.name}.kubeconfig").remove()
        return 0
    print("usage: python3 -m tests.engines.kube up|down", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
