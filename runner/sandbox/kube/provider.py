"""The run's sandboxes on Kubernetes: a Pod each, its checkout on emptyDir volumes that live as
long as the Pod, or on a PersistentVolumeClaim of its own that outlives it (spec.durable).

A Pod is started, its clone made inside from the history bundle (sent on an exec's stdin),
and every command runs through pods/exec as the Pod's user, under ``timeout`` in the Pod and
a watchdog here that deletes the Pod if even that does not end it. Kubernetes cannot restart
a Pod's container in place the way Docker restarts a container: a Pod deleted or evicted from
outside, or one whose node stopped answering, is a sandbox that stopped. The ticket then
fails as one whose container was stopped (``retries:`` runs it again). On emptyDir its
workspace went with it; on a claim a new Pod takes the workspace over, as Docker starts a
stopped container again, and what the worker committed is collected. An interrupted run's
Pods and claims stay, so that a resume collects what they hold (from a new Pod over a claim
whose Pod is gone).
"""

from __future__ import annotations

import io
import secrets
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

from kubernetes.client.exceptions import ApiException

from runner.errors import EngineUnavailable, EnvironmentProblem
from runner.sandbox import (GRADLE_HOME, KILL_GRACE, SCRATCH_PLACES, STOPPED_EXIT, STRICT_BASH,
                            TIMEOUT_EXIT, WATCHDOG_SLACK, WORKSPACE, Checkout, ExecResult, Limits,
                            Mount, OutputHandler, SandboxSpec, Take, output_of, output_to_file,
                            under_timeout)
from runner.sandbox.diskwatch import PASS_LIMIT, DiskUsage, DiskWatch, du_command, read_du
from runner.sandbox.kube.cluster import Cluster, api_reason
from runner.sandbox.kube.execs import UPLOAD, LocalFailure, StreamLost, chunks, env_on_stdin
from runner.sandbox.kube.pods import (ASIDE, CHECKOUT, KEY, RUN, checkout_digest, claim_manifest,
                                      pod_manifest, pod_name, pod_user, policy_manifest,
                                      policy_name, spec_labels)
from runner.sandbox.kube.relay import RELAY
from runner.sandbox.kube.tunnel import GatewayTunnel
from runner.sandbox.provisioning import CLONE, HISTORY, history_bundle

START_TIMEOUT = 300       # seconds a Pod may take to be scheduled and start
# A Pod that will not start, by its container's waiting reason: what to tell the user.
UNSTARTABLE = {
    "ErrImagePull": "its image cannot be pulled",
    "ImagePullBackOff": "its image cannot be pulled",
    "ErrImageNeverPull": "its image is not on the node",
    "InvalidImageName": "its image name is invalid",
    "CreateContainerConfigError": "its container cannot be configured",
    "CreateContainerError": "its container cannot be created",
    "RunContainerError": "its container cannot start",
}


class KubeSandboxes:
    """The SandboxProvider for a cluster: Pods labelled with the run, one NetworkPolicy."""

    shares_disk = False

    def __init__(self, cluster: Cluster, *, run_id: str, root: Path) -> None:
        self.cluster, self.run_id, self.root = cluster, run_id, root
        self._policy = False
        self._lock = threading.Lock()
        self._image_env: dict[str, dict[str, str]] = {}
        self._env_lock = threading.Lock()
        self._classes_checked = False

    # --- opening ----------------------------------------------------------------------

    @contextmanager
    def open(self, spec: SandboxSpec, *, keep: bool = False) -> Iterator[KubeSandbox]:
        _refuse_host_paths(spec)
        checkout = spec.checkout
        sandbox = (self._attach(spec) if checkout is not None and not checkout.fresh
                   else self._start(spec))
        try:
            sandbox.open_gateway()
            with self._watch_disk(sandbox):
                yield sandbox
        except BaseException:
            # A checkout on emptyDir lives in the Pod: what could not be collected stays
            # there, its processes ended, for salvage (kept()), set_aside() or discard() to
            # deal with. One on a claim stays on the claim whatever becomes of the Pod.
            if not (keep or checkout is None or sandbox.gone or sandbox.claim is not None
                    or _scratch(checkout.place)):
                keep = True
                sandbox.stop_processes()
            raise
        finally:
            sandbox.close_gateway()
            if not keep:
                # Its processes first: what the worker left running must not outlive the
                # policy, which goes with the run's last Pod. A claim stays, as a Docker
                # engine's volumes do, until discard() or clear() (`runner clean`).
                sandbox.stop_processes()
                self._delete(sandbox.pod)

    def _start(self, spec: SandboxSpec) -> KubeSandbox:
        self._ensure_policy()
        claim = None
        if spec.durable is not None and spec.checkout is not None and not _scratch(
                spec.checkout.place):
            self._check_storage_class(spec.durable.storage_class)
            manifest = _named(claim_manifest(spec, run_id=self.run_id))
            self.cluster.call(self.cluster.core.create_namespaced_persistent_volume_claim,
                              self.cluster.namespace, manifest)
            claim = manifest["metadata"]["name"]
        pod = None
        try:
            pod = start_pod(self.cluster, spec, self.run_id, claim=claim)
            sandbox = KubeSandbox(self.cluster, pod, spec, claim=claim, run_id=self.run_id)
            if spec.checkout is not None:
                self._provision(sandbox, spec.checkout)
            return sandbox
        except BaseException:
            if pod is not None:
                self._delete(pod)
            if claim is not None:
                self._delete_claim(claim)
            raise

    def _provision(self, sandbox: KubeSandbox, checkout: Checkout) -> None:
        """The clone made inside, as the worker: the history bundle sent on stdin, then git
        clones it; the private home gets its files."""
        bundle = history_bundle(checkout, self.root / "bundles")
        with bundle.open("rb") as data:
            sandbox.upload(f"{WORKSPACE}/{HISTORY}", chunks(data.read), bundle.stat().st_size)
        for name, text in checkout.home_files:
            data = text.encode()
            sandbox.upload(f"{GRADLE_HOME}/{name}", [data], len(data))
        for name, source in checkout.home_copies:
            with source.open("rb") as copied:
                sandbox.upload(f"{GRADLE_HOME}/{name}", chunks(copied.read),
                               source.stat().st_size)
        made = sandbox.exec([*STRICT_BASH, CLONE, "clone", f"{WORKSPACE}/{HISTORY}",
                             checkout.branch, checkout.start], timeout=600)
        if not made.ok:
            raise EnvironmentProblem(f"could not make the clone in Pod {sandbox.pod}: "
                                     f"{made.output.strip().splitlines()[-1:] or made}")

    def _attach(self, spec: SandboxSpec) -> KubeSandbox:
        """The Pod that holds ``spec``'s checkout already (a resume's salvage), or a new one
        over the claim that holds it."""
        assert spec.checkout is not None
        key = f"{spec.checkout.place}/{spec.checkout.name}"
        held = f"{CHECKOUT}={checkout_digest(key)},!{ASIDE}"
        pods = self._pods(held)
        running = [pod for pod in pods if pod.status.phase == "Running" and (
            spec.gateway is None or RELAY in {c.name for c in pod.spec.containers})]
        if running:
            pod = running[0]
            return KubeSandbox(self.cluster, pod.metadata.name, spec, claim=_claim_of(pod),
                               run_id=self.run_id)
        claims = sorted(self._claims(held), key=lambda c: c.metadata.creation_timestamp)
        if not claims:
            if pods:
                raise EnvironmentProblem(f"Pod {pods[0].metadata.name}, which holds {key}, "
                                         "was made without the gateway's relay, which this "
                                         "phase needs")
            raise EnvironmentProblem(f"the workspace of {key} is gone: it lived in its Pod, "
                                     "which is gone")
        for pod in pods:       # stopped, or without the relay: the claim's new Pod replaces it
            self._delete(pod.metadata.name)
        claim = claims[-1].metadata.name
        self._ensure_policy()
        return KubeSandbox(self.cluster, start_pod(self.cluster, spec, self.run_id, claim=claim),
                           spec, claim=claim, run_id=self.run_id)

    def _watch_disk(self, sandbox: KubeSandbox) -> AbstractContextManager[object]:
        """The disk budget, measured by du inside the Pod over its workspace volumes."""
        if sandbox.spec.limits.disk is None or sandbox.spec.checkout is None:
            return nullcontext()
        return DiskWatch({WORKSPACE: WORKSPACE, GRADLE_HOME: GRADLE_HOME},
                         budget=sandbox.spec.limits.disk, stop=sandbox.stop_for,
                         measure=sandbox.measure)

    def _check_storage_class(self, wanted: str | None) -> None:
        """A claim of a class the cluster lacks (or of none, where it has no default class)
        would wait START_TIMEOUT in every ticket: said at once instead. Unchecked where
        runner may not list StorageClasses (the claim's Pod then says why it waits)."""
        with self._lock:
            if self._classes_checked:
                return
            try:
                classes = self.cluster.call(self.cluster.storage.list_storage_class,
                                            expect=(401, 403)).items
            except ApiException:
                classes = None
            self._classes_checked = True
        if classes is None:
            return
        names = sorted(c.metadata.name for c in classes)
        has = f"it has: {', '.join(names)}" if names else "it has none"
        if wanted and wanted not in names:
            raise EnvironmentProblem(f"kubernetes.storage_class {wanted!r}: the cluster has no "
                                     f"such StorageClass ({has}); name one of its classes")
        if not wanted and not any(_default_class(c) for c in classes):
            raise EnvironmentProblem("kubernetes.workspaces: claim, with no storage_class, "
                                     f"needs the cluster's default StorageClass, and it has "
                                     f"no default ({has}): set kubernetes.storage_class")

    def _ensure_policy(self) -> None:
        """The run's NetworkPolicy, before each Pod: nothing in, nothing out. Asked for every
        time (one call): another runner of the run (a `runner shell`) may have removed it
        when the run had no Pod."""
        with self._lock:
            try:
                self.cluster.call(self.cluster.net.create_namespaced_network_policy,
                                  self.cluster.namespace, policy_manifest(self.run_id),
                                  expect=(409,))
            except ApiException:
                pass             # there already
            self._policy = True

    # --- what a run keeps -------------------------------------------------------------

    def _pods(self, selector: str = "") -> list[Any]:
        """The run's Pods (matching ``selector`` too)."""
        return self._listed(self.cluster.core.list_namespaced_pod, selector)

    def _claims(self, selector: str = "") -> list[Any]:
        """The run's workspace claims (matching ``selector`` too)."""
        return self._listed(self.cluster.core.list_namespaced_persistent_volume_claim,
                            selector)

    def _listed(self, list_them: Any, selector: str) -> list[Any]:
        wanted = f"{RUN}={self.run_id}" + (f",{selector}" if selector else "")
        return [found for found in self.cluster.call(list_them, self.cluster.namespace,
                                                     label_selector=wanted).items
                if found.metadata.deletion_timestamp is None]

    def _delete(self, pod: str) -> str | None:
        """Delete a Pod now; what stays, or None. One gone already is no problem; one the
        server did not delete (or a server away) is left to `runner clean`."""
        try:
            self.cluster.delete_pod(pod)
        except ApiException as e:
            return None if e.status == 404 else f"Pod {pod} stays ({api_reason(e)})"
        except EnvironmentProblem as e:
            return f"Pod {pod} stays ({e})"
        return None

    def _delete_claim(self, claim: str) -> str | None:
        """Delete a workspace claim (its volume goes once no Pod uses it); what stays, or
        None."""
        try:
            self.cluster.call(self.cluster.core.delete_namespaced_persistent_volume_claim,
                              claim, self.cluster.namespace, expect=(404,))
        except ApiException as e:
            return None if e.status == 404 else f"claim {claim} stays ({api_reason(e)})"
        except EnvironmentProblem as e:
            return f"claim {claim} stays ({e})"
        return None

    def _held(self, place: str, name: str | None) -> tuple[list[Any], list[Any]]:
        """The run's live Pods and claims holding checkouts under ``place`` (of ``name``)."""
        def matches(found: Any) -> bool:
            key = (found.metadata.annotations or {}).get(KEY, "")
            return key == f"{place}/{name}" if name is not None else key.startswith(f"{place}/")
        held = f"{CHECKOUT},!{ASIDE}"
        return ([pod for pod in self._pods(held) if matches(pod)],
                [claim for claim in self._claims(held) if matches(claim)])

    def kept(self) -> list[tuple[str, str]]:
        """Checkouts in Running Pods, and on claims whatever became of their Pods."""
        held = f"{CHECKOUT},!{ASIDE}"
        found = [found for found in self._pods(held) if found.status.phase == "Running"]
        found += self._claims(held)
        keys = [(found.metadata.annotations or {}).get(KEY, "").rpartition("/")
                for found in found]
        return sorted({(place, name) for place, _, name in keys
                       if place.split("/")[0] not in SCRATCH_PLACES})

    def discard(self, place: str, name: str | None = None, *,
                later: bool = False) -> str | None:
        pods, claims = self._held(place, name)
        problems = [problem for problem in [
            *(self._delete(pod.metadata.name) for pod in pods),
            *(self._delete_claim(claim.metadata.name) for claim in claims)] if problem]
        return "; ".join(problems) or None

    def set_aside(self, place: str, name: str, label: str) -> str:
        """The Pod (and claim) stays as it is, out of the run's way: no longer its
        checkout's."""
        pods, claims = self._held(place, name)
        aside = {"metadata": {"labels": {CHECKOUT: None, ASIDE: "yes"},
                              "annotations": {"runner.aside-why": label}}}
        for pod in pods:
            self.cluster.call(self.cluster.core.patch_namespaced_pod, pod.metadata.name,
                              self.cluster.namespace, aside)
        _stop(self.cluster, [pod.metadata.name for pod in pods])
        for claim in claims:
            self.cluster.call(self.cluster.core.patch_namespaced_persistent_volume_claim,
                              claim.metadata.name, self.cluster.namespace, aside)
        return ", ".join(self._where(pods, claims)) or f"nowhere: nothing holds {place}/{name}"

    def aside(self) -> list[str]:
        return self._where(self._pods(ASIDE), self._claims(ASIDE))

    def _where(self, pods: list[Any], claims: list[Any]) -> list[str]:
        """What to call the Pods and claims that hold checkouts, in a sentence (a claim its
        Pod mounts is named with it)."""
        mounted = {_claim_of(pod) for pod in pods}
        return [*(f"Pod {self.cluster.namespace}/{pod.metadata.name}"
                  + (f" (claim {claim})" if (claim := _claim_of(pod)) else "") for pod in pods),
                *(f"claim {self.cluster.namespace}/{claim.metadata.name}" for claim in claims
                  if claim.metadata.name not in mounted)]

    def clear(self) -> str | None:
        problems = [problem for problem in [
            *(self._delete(pod.metadata.name) for pod in self._pods(f"!{ASIDE}")),
            *(self._delete_claim(claim.metadata.name)
              for claim in self._claims(f"!{ASIDE}"))] if problem]
        if problems or self._pods(f"!{ASIDE}") or self._claims(f"!{ASIDE}"):
            return ("some of the run's Pods or claims stay (the cluster did not delete them"
                    + (f": {'; '.join(problems)[:300]}" if problems else "") + ")")
        if not self._pods(ASIDE):       # a Pod set aside keeps the policy that isolates it
            self._remove_policy()
        return None

    def _remove_policy(self) -> None:
        try:
            self.cluster.call(self.cluster.net.delete_namespaced_network_policy,
                              policy_name(self.run_id), self.cluster.namespace, expect=(404,))
        except ApiException:
            pass          # gone already
        self._policy = False

    def prepare(self, spec: SandboxSpec, *, started: bool = True) -> None:
        """Nothing is made ahead: a Pod's checkout is made inside it once it runs."""

    def settle(self) -> None:
        """Closed Pods are deleted at once; the policy goes with the run's last Pod (one kept
        keeps it: `runner clean` removes both)."""
        try:
            if self._policy and not self._pods():
                self._remove_policy()
        except EnvironmentProblem:
            pass        # `runner clean` removes it

    @contextmanager
    def reopen(self, spec: SandboxSpec) -> Iterator[KubeSandbox | None]:
        ticket = spec.labels.get("runner.ticket")
        found = [pod for pod in self._pods() if pod.status.phase == "Running"
                 and spec_labels(pod.metadata.annotations).get("runner.ticket") == ticket
                 and "runner.shell" not in spec_labels(pod.metadata.annotations)]
        if not found:
            yield None
            return
        pod = max(found, key=lambda p: p.metadata.creation_timestamp)
        yield KubeSandbox(self.cluster, pod.metadata.name, spec, claim=_claim_of(pod),
                          run_id=self.run_id)

    def remove_run(self, run_id: str) -> int:
        """Every Pod of the run goes but those set aside and those holding a checkout of
        kept() on emptyDir: they are workspaces, so they stay, every process in them ended,
        for the salvage after (or for whoever looks at what was set aside)."""
        try:
            pods = self._pods()
            kept = {f"{place}/{name}" for place, name in self.kept()}
        except EnvironmentProblem:
            return 0        # nothing to reach: `runner clean` finds them later
        # A Pod over a claim goes too (it holds the node's CPU and memory): the claim keeps
        # the files, and a new Pod over it collects them.
        stay = [pod for pod in pods if ASIDE in (pod.metadata.labels or {}) or (
            (pod.metadata.annotations or {}).get(KEY) in kept and _claim_of(pod) is None)]
        for pod in pods:
            if pod not in stay:
                self._delete(pod.metadata.name)
        _stop(self.cluster, [pod.metadata.name for pod in stay])
        return len(pods) - len(stay)

    def stop_processes(self, run_id: str) -> None:
        """Every worker process of the run ends; the Pods and their files stay."""
        try:
            _stop(self.cluster, [pod.metadata.name for pod in self._pods()
                                 if pod.status.phase == "Running"])
        except EnvironmentProblem:
            pass

    def image_env(self, image: str) -> dict[str, str]:
        """What ``image`` sets in every Pod made from it: a Pod of it that runs `env -0` with
        nothing given, read from its log (once per image and run)."""
        with self._env_lock:        # the probes ask at once: one Pod
            if image not in self._image_env:
                self._image_env[image] = self._read_image_env(image)
            return self._image_env[image]

    def _read_image_env(self, image: str) -> dict[str, str]:
        spec = SandboxSpec(name=f"runner-{self.run_id}-env-{pod_name(image)}", image=image,
                           env={}, labels={"runner.run": self.run_id},
                           limits=Limits(cpus=0.25, memory="128m", pids=64))
        self._ensure_policy()
        pod = start_pod(self.cluster, spec, self.run_id, command=["env", "-0"])
        try:
            log = self.cluster.call(self.cluster.core.read_namespaced_pod_log, pod,
                                    self.cluster.namespace, _preload_content=False).data
        finally:
            self._delete(pod)
        return dict(entry.split("=", 1) for entry in log.decode("utf-8", "replace").split("\0")
                    if "=" in entry)

    def answers(self) -> bool:
        return self.cluster.answers()


class KubeSandbox:
    """One Pod, its commands run through pods/exec; over ``claim``, a Pod lost is replaced by
    a new one over the same checkout."""

    def __init__(self, cluster: Cluster, pod: str, spec: SandboxSpec, *,
                 claim: str | None = None, run_id: str = "") -> None:
        self.cluster, self.pod, self.spec = cluster, pod, spec
        self.claim, self.run_id = claim, run_id
        self.name = spec.name
        self.user = ":".join(map(str, pod_user(spec.user)))
        self.restarts = 0         # times its Pod was found gone (over a claim: replaced)
        self.stopped_for = ""
        self._gone = ""           # why its Pod is gone for good ("" while it runs)
        self._replace_due = False  # its Pod is gone, and the next command starts a new one
        self._stops = 0
        self._last_stop = ""
        self._reset_due = False
        self._tunnel: GatewayTunnel | None = None
        self._told = ""           # the gateway's trouble last said

    def open_gateway(self) -> None:
        """The Pod's relay joined to the ticket's gateway socket here, when it has one."""
        if self.spec.gateway is not None:
            self._tunnel = GatewayTunnel(self.cluster, self.pod, self.spec.gateway).start()

    def close_gateway(self) -> None:
        if self._tunnel is not None:
            self._tunnel.close()
            self._tunnel = None

    def exec(self, argv: Sequence[str], *, timeout: float,
             on_output: OutputHandler | None = None,
             env: Mapping[str, str] | None = None) -> ExecResult:
        result = output_of(lambda take: self._run(argv, timeout, env, take), on_output)
        if on_output is not None:       # a worker's command: its lines go to the ticket's log
            self._tell_gateway_trouble(on_output)
        return result

    def exec_to_file(self, argv: Sequence[str], *, timeout: float, dest: Path,
                     limit: int) -> ExecResult:
        return output_to_file(lambda take: self._run(argv, timeout, None, take), dest, limit)

    def upload(self, path: str, data: Iterable[bytes], size: int) -> None:
        upload(self.cluster, self.pod, path, data, size)

    def interact(self, argv: Sequence[str]) -> int:
        from runner.sandbox.kube.shell import interact

        if self._gone:
            raise EnvironmentProblem(f"cannot open a shell in Pod {self.pod}: {self._gone}")
        with _answering(self.cluster):
            return interact(self.cluster, self.pod, argv)

    def files_holding(self, needle: bytes) -> list[str] | None:
        return None     # looking inside would send the needle in

    def reset(self) -> None:
        """By the next command, as its first step: the keeper is the container's pid 1,
        which a kill(-1) inside never signals."""
        self._reset_due = True

    @property
    def gone(self) -> bool:
        return bool(self._gone)

    def stop_processes(self) -> None:
        _stop(self.cluster, [self.pod])

    def _run(self, argv: Sequence[str], timeout: float, env: Mapping[str, str] | None,
             take: Take) -> tuple[int, bool, str]:
        if self._replace_due:
            self._replace_pod()
        if self._gone:
            take(2, f"runner: {self._gone}\n".encode())
            return STOPPED_EXIT, False, ""
        stops = self._stops
        stdin: list[bytes] | None = None
        if env:          # exec takes no environment, and argv travels in its URL
            argv, data = env_on_stdin(env, argv)
            stdin = [data]
        reset_first, self._reset_due = self._reset_due, False
        wrapped = under_timeout(argv, timeout, grace=KILL_GRACE, reset_first=reset_first)
        started = time.monotonic()
        killed = threading.Event()
        timer = threading.Timer(timeout + KILL_GRACE + WATCHDOG_SLACK, self._kill, [killed])
        timer.daemon = True
        timer.start()
        broke = ""
        try:
            with _answering(self.cluster):
                code = self.cluster.exec(self.pod, wrapped, take, stdin=stdin,
                                         stop=killed.is_set)
        except (StreamLost, ApiException) as e:
            if not self.cluster.answers():
                raise EngineUnavailable(f"the Kubernetes API server at {self.cluster.where} "
                                        f"stopped answering ({e})") from e
            broke, code = str(e), STOPPED_EXIT
        finally:
            timer.cancel()
        if self._stops > stops and code == STOPPED_EXIT:
            return code, False, self._last_stop
        # Killed, or its stream cut: by the Pod's end (the watchdog's own stop is no loss)?
        if code == STOPPED_EXIT and not killed.is_set():
            if lost := self._pod_lost():
                take(2, f"runner: {lost}\n".encode())
                return code, False, lost
            if broke:
                take(2, f"runner: the command's stream to Pod {self.pod} broke "
                        f"({broke[:200]})\n".encode())
        late = code == STOPPED_EXIT and time.monotonic() - started >= timeout
        return code, killed.is_set() or code == TIMEOUT_EXIT or late, ""

    def _tell_gateway_trouble(self, on_output: OutputHandler) -> None:
        """Why the worker's way out failed, once, after the command it failed: never in a
        command's own output, which runner may read."""
        trouble = self._tunnel.trouble if self._tunnel is not None else ""
        if trouble and trouble != self._told:
            on_output(f"runner: {trouble}")
        self._told = trouble

    def _pod_lost(self) -> str | None:
        """Whether its Pod is gone (deleted, evicted, ended) or its node stopped answering,
        which is a sandbox that stopped (counted; over a claim a new Pod takes over before
        the next command, else it is never started again): what happened, or None while it
        runs (a command killed in it, or a stream that broke, fails that command only)."""
        try:
            pod = self.cluster.call(self.cluster.core.read_namespaced_pod, self.pod,
                                    self.cluster.namespace, expect=(404,))
        except ApiException:
            pod = None
        if pod is None or pod.metadata.deletion_timestamp is not None:
            lost = f"its Pod {self.pod} was deleted"
        elif pod.status.phase != "Running":
            lost = (f"its Pod {self.pod} stopped ({pod.status.reason or pod.status.phase}: "
                    f"{(pod.status.message or '-')[:200]})")
        elif not _node_ready(self.cluster, pod.spec.node_name):
            # Its claim may be bound to that node: it stays for a resume's salvage.
            self._gone = (f"the node of its Pod {self.pod} ({pod.spec.node_name}) stopped "
                          "answering")
            self.restarts += 1
            return self._gone
        else:
            return None
        self.restarts += 1
        if self.claim is None:
            self._gone = f"{lost}; its workspace went with it"
            return self._gone
        self._replace_due = True
        return f"{lost}; a new Pod takes over its workspace (claim {self.claim})"

    def _replace_pod(self) -> None:
        """A new Pod over its claim, as Docker starts a stopped container again: the files
        are as the worker left them, nothing of what ran is."""
        self._replace_due = False
        self.close_gateway()
        old = self.pod
        try:
            self.cluster.delete_pod(old)      # one stopped (evicted) still mounts it
        except EngineUnavailable:
            raise
        except (ApiException, EnvironmentProblem):
            pass
        _wait_gone(self.cluster, old)
        try:
            self.pod = start_pod(self.cluster, self.spec, self.run_id, claim=self.claim)
            self.open_gateway()
        except EngineUnavailable:
            raise
        except (ApiException, EnvironmentProblem) as e:
            self._gone = f"no new Pod could take over its workspace (claim {self.claim}): {e}"

    def _kill(self, killed: threading.Event) -> None:
        """The watchdog: the command outlived even `timeout` (the worker can kill that):
        every process in the Pod ends; a Pod where nothing can be run to do it goes."""
        killed.set()
        if _stop(self.cluster, [self.pod]):
            if self.claim is not None:       # its files stay: a new Pod takes them over
                self._replace_due = True
            else:
                self._gone = (f"runner deleted its Pod {self.pod}: a command outlived its "
                              "timeout and nothing could be run there to stop it")
            try:
                self.cluster.delete_pod(self.pod)
            except (ApiException, EnvironmentProblem):
                pass

    def stop_for(self, reason: str) -> None:
        """Stop the worker over a limit (the disk watch's thread): every process of its ends,
        its files stay for collection."""
        self.stopped_for = self.stopped_for or reason
        self._last_stop = reason
        self._stops += 1
        _stop(self.cluster, [self.pod])

    def measure(self, roots: list[str], deadline: float | None) -> DiskUsage | None:
        """du over ``roots`` inside the Pod, stopped at ``deadline``; None while it is gone."""
        if self._gone:
            return None
        left = PASS_LIMIT if deadline is None else deadline - time.monotonic()
        if left <= 0:
            return DiskUsage(0, complete=False)
        out, err = io.BytesIO(), io.BytesIO()
        try:
            code = self.cluster.exec(
                self.pod, ["timeout", "-s", "KILL", f"{left:.1f}s", *du_command(roots)],
                lambda stream, chunk: (out if stream == 1 else err).write(chunk))
        except Exception:    # noqa: BLE001 - gone, or the server away: the commands say
            return None
        if code in (125, 126, 127):
            return DiskUsage(0, complete=False, failed="du could not run in it")
        if code not in (0, 1):
            return DiskUsage(0, complete=False)
        return read_du(out.getvalue().decode("utf-8", "surrogateescape"),
                       err.getvalue().decode("utf-8", "surrogateescape"))


def start_pod(cluster: Cluster, spec: SandboxSpec, run_id: str, *, claim: str | None = None,
              command: list[str] | None = None) -> str:
    """A Pod of ``spec`` (over ``claim``), running (one that runs ``command``: ended): its
    name. One that cannot get there is deleted, and EnvironmentProblem says why."""
    manifest = _named(pod_manifest(spec, run_id=run_id, command=command, claim=claim))
    cluster.call(cluster.core.create_namespaced_pod, cluster.namespace, manifest)
    pod = str(manifest["metadata"]["name"])
    try:
        wait_running(cluster, pod, spec.image, until="Succeeded" if command else "Running")
        if not command:
            send_files(cluster, pod, spec.files)
    except BaseException:
        try:
            cluster.delete_pod(pod)
        except (ApiException, EnvironmentProblem):
            pass
        raise
    return pod


def upload(cluster: Cluster, pod: str, path: str, data: Iterable[bytes], size: int,
           mode: str = "") -> None:
    """Write ``size`` bytes of ``data`` to ``path`` in ``pod``, as its user, sent on the
    exec's stdin (framed by its size: the stream cannot close stdin); chmod ``mode``."""
    said = bytearray()
    with _answering(cluster):
        code = cluster.exec(pod, ["sh", "-c", UPLOAD, "upload", str(size), path, mode],
                            lambda _stream, chunk: said.extend(chunk[-4096:]), stdin=data)
    if code != 0:
        raise EnvironmentProblem(f"could not send {path} into Pod {pod}: "
                                 f"{said.decode('utf-8', 'replace').strip()[-200:]}")


def send_files(cluster: Cluster, pod: str, files: Sequence[Mount]) -> None:
    """The files of this machine a sandbox is given (the Claude Code binary), sent into the
    Pod's own copy of their directories: a Pod cannot mount a path of this machine. A file
    given read-only is left readable and runnable, not writable (by the worker, whose own
    copy it is, all the same)."""
    for mount in files:
        with mount.source.open("rb") as data:
            upload(cluster, pod, mount.target, chunks(data.read), mount.source.stat().st_size,
                   mode="555" if mount.read_only else "755")


def wait_running(cluster: Cluster, pod: str, image: str, until: str = "Running") -> None:
    """Until the Pod's phase is ``until`` (Running; Succeeded for one that runs a command);
    EnvironmentProblem saying why when it cannot get there."""
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        status = _status(cluster, pod)
        if status is None:
            raise EnvironmentProblem(f"Pod {pod} was deleted while it started")
        phase, waiting = status.phase, _waiting(status)
        containers = status.container_statuses or []
        ended = next((c for c in containers if c.state and c.state.terminated), None)
        if phase == until and until != "Running":
            return
        if phase == "Running" and ended is not None:     # the gateway's relay, say
            why = ended.state.terminated
            raise EnvironmentProblem(f"Pod {pod}: its container {ended.name} ended as it "
                                     f"started ({why.reason}: {(why.message or '-')[:200]}, "
                                     f"exit {why.exit_code})")
        if phase == until and all(c.state and c.state.running for c in containers):
            return
        if phase in ("Failed", "Succeeded"):
            raise EnvironmentProblem(f"Pod {pod} ended as it started ({phase}: "
                                     f"{status.message or status.reason or '-'})")
        if waiting and waiting.reason in UNSTARTABLE:
            raise EnvironmentProblem(
                f"Pod {pod} cannot start: {UNSTARTABLE[waiting.reason]} ({image}: "
                f"{(waiting.message or waiting.reason)[:300]}); the phase's image must be "
                "one the cluster's nodes can pull")
        if time.monotonic() > deadline:
            raise EnvironmentProblem(f"Pod {pod} did not start in {START_TIMEOUT}s "
                                     f"({_pending_why(status)})")
        time.sleep(min(0.1 + (time.monotonic() - deadline + START_TIMEOUT) / 20, 2.0))


KILL_ALL = ["sh", "-c", "kill -KILL -1 2>/dev/null; true"]   # the shell's own kill: no procps


def _stop(cluster: Cluster, pods: list[str]) -> list[str]:
    """End every process in ``pods`` but the keeper (kill -KILL -1 as the Pod's user spares
    the container's pid 1), the Pods at once; those where it could not run."""
    def kill(pod: str) -> bool:
        try:
            return cluster.exec(pod, KILL_ALL, lambda _s, _c: None) == 0
        except Exception:    # noqa: BLE001 - gone, or the server away
            return False

    if not pods:
        return []
    with ThreadPoolExecutor(min(8, len(pods)), thread_name_prefix="stop") as pool:
        return [pod for pod, done in zip(pods, pool.map(kill, pods), strict=True) if not done]


def _status(cluster: Cluster, pod: str) -> Any:
    """A Pod's status; None when it is gone or being deleted."""
    try:
        found = cluster.call(cluster.core.read_namespaced_pod, pod, cluster.namespace,
                             expect=(404,))
    except ApiException:
        return None
    return None if found.metadata.deletion_timestamp is not None else found.status


def _node_ready(cluster: Cluster, node: str | None) -> bool:
    """Whether ``node`` reports Ready (True too when runner may not read nodes)."""
    if not node:
        return True
    try:
        found = cluster.call(cluster.core.read_node_status, node, expect=(401, 403, 404))
    except ApiException as e:
        return e.status != 404
    return any(c.type == "Ready" and c.status == "True" for c in found.status.conditions or [])


def _named(manifest: dict[str, Any]) -> dict[str, Any]:
    """A name of its own: a Pod set aside keeps its name, and the ticket runs again."""
    manifest["metadata"]["name"] += f"-{secrets.token_hex(2)}"
    return manifest


def _default_class(storage_class: Any) -> bool:
    annotations = storage_class.metadata.annotations or {}
    return "true" in (annotations.get("storageclass.kubernetes.io/is-default-class"),
                      annotations.get("storageclass.beta.kubernetes.io/is-default-class"))


def _wait_gone(cluster: Cluster, pod: str, timeout: float = 60) -> None:
    """Until ``pod`` is gone from the API: a Pod deleted with a grace period is listed until
    its containers ended, which must not write to its claim beside its successor's."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            cluster.call(cluster.core.read_namespaced_pod, pod, cluster.namespace,
                         expect=(404,))
        except ApiException:
            return
        time.sleep(0.5)


def _claim_of(pod: Any) -> str | None:
    """The workspace claim a Pod mounts, if any."""
    return next((volume.persistent_volume_claim.claim_name for volume in pod.spec.volumes or []
                 if volume.persistent_volume_claim is not None), None)


def _scratch(place: str) -> bool:
    return place.split("/")[0] in SCRATCH_PLACES


@contextmanager
def _answering(cluster: Cluster) -> Iterator[None]:
    """A stream that broke is StreamLost, or EngineUnavailable when the server is away; a
    failure here, taking its output (this machine's disk), is that failure."""
    from urllib3.exceptions import HTTPError
    from websocket import WebSocketException

    try:
        yield
    except LocalFailure as e:
        raise e.__cause__ or e from None
    except ApiException as e:
        if e.status == 0 and not cluster.answers():
            raise EngineUnavailable(f"the Kubernetes API server at {cluster.where} stopped "
                                    f"answering ({e.reason})") from e
        raise StreamLost(f"the exec was refused: {api_reason(e)}") from e
    except (HTTPError, OSError, WebSocketException) as e:
        if not cluster.answers():
            raise EngineUnavailable(f"the Kubernetes API server at {cluster.where} stopped "
                                    f"answering ({e.__class__.__name__})") from e
        raise StreamLost(f"{e.__class__.__name__}: {e}") from e


def _refuse_host_paths(spec: SandboxSpec) -> None:
    if spec.shared_cache is not None:
        raise EnvironmentProblem("a Pod cannot mount a path of this machine (gradle."
                                 "shared_cache): leave it out")


def _waiting(status: Any) -> Any:
    for container in [*(status.init_container_statuses or []),
                      *(status.container_statuses or [])]:
        if container.state and container.state.waiting:
            return container.state.waiting
    return None


def _pending_why(status: Any) -> str:
    if status is None:
        return "it is gone"
    for condition in status.conditions or []:
        if condition.status != "True" and condition.message:
            return f"{condition.type}: {condition.message[:300]}"
    waiting = _waiting(status)
    return (waiting.message or waiting.reason) if waiting else (status.phase or "pending")
