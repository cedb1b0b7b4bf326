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

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

from kubernetes.client.exceptions import ApiException

from runner.errors import EnvironmentProblem
from runner.sandbox import (GRADLE_HOME, SCRATCH_PLACES, STRICT_BASH, WORKSPACE, Checkout, Limits,
                            SandboxSpec)
from runner.sandbox.cuts import ENGINE_PATIENCE, Say
from runner.sandbox.diskwatch import DiskWatch
from runner.sandbox.kube.cluster import Cluster, api_reason
from runner.sandbox.kube.podlife import (claim_of, default_class, named, refuse_host_paths,
                                         scratch_place, start_pod, stop_pods)
from runner.sandbox.kube.pods import (ASIDE, CHECKOUT, KEY, RELAY, RUN, checkout_digest,
                                      claim_manifest, pod_name, policy_manifest, policy_name,
                                      spec_labels)
from runner.sandbox.kube.sandbox import KubeSandbox
from runner.sandbox.provisioning import CLONE, HISTORY, history_bundle


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
    def open(self, spec: SandboxSpec, *, keep: bool = False,
             say: Say | None = None) -> Iterator[KubeSandbox]:
        refuse_host_paths(spec)
        checkout = spec.checkout
        sandbox = (self._attach(spec) if checkout is not None and not checkout.fresh
                   else self._start(spec))
        sandbox.say.to(say)
        try:
            sandbox.open_gateway()
            with self._watch_disk(sandbox):
                yield sandbox
        except BaseException:
            # A checkout on emptyDir lives in the Pod: what could not be collected stays
            # there, its processes ended, for salvage (kept()), set_aside() or discard() to
            # deal with. One on a claim stays on the claim whatever becomes of the Pod.
            if not (keep or checkout is None or sandbox.gone or sandbox.claim is not None
                    or scratch_place(checkout.place)):
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
        if spec.durable is not None and spec.checkout is not None and not scratch_place(
                spec.checkout.place):
            self._check_storage_class(spec.durable.storage_class)
            manifest = named(claim_manifest(spec, run_id=self.run_id))
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
        sandbox.upload(f"{WORKSPACE}/{HISTORY}", history_bundle(checkout, self.root / "bundles"))
        for name, text in checkout.home_files:
            sandbox.upload(f"{GRADLE_HOME}/{name}", text.encode())
        for name, source in checkout.home_copies:
            sandbox.upload(f"{GRADLE_HOME}/{name}", source)
        made = sandbox.exec([*STRICT_BASH, CLONE, "clone", f"{WORKSPACE}/{HISTORY}",
                             checkout.branch, checkout.start], timeout=600, repeatable=True)
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
            return KubeSandbox(self.cluster, pod.metadata.name, spec, claim=claim_of(pod),
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
        if not wanted and not any(default_class(c) for c in classes):
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
        stop_pods(self.cluster, [pod.metadata.name for pod in pods])
        for claim in claims:
            self.cluster.call(self.cluster.core.patch_namespaced_persistent_volume_claim,
                              claim.metadata.name, self.cluster.namespace, aside)
        return ", ".join(self._where(pods, claims)) or f"nowhere: nothing holds {place}/{name}"

    def aside(self) -> list[str]:
        return self._where(self._pods(ASIDE), self._claims(ASIDE))

    def _where(self, pods: list[Any], claims: list[Any]) -> list[str]:
        """What to call the Pods and claims that hold checkouts, in a sentence (a claim its
        Pod mounts is named with it)."""
        mounted = {claim_of(pod) for pod in pods}
        return [*(f"Pod {self.cluster.namespace}/{pod.metadata.name}"
                  + (f" (claim {claim})" if (claim := claim_of(pod)) else "") for pod in pods),
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
        yield KubeSandbox(self.cluster, pod.metadata.name, spec, claim=claim_of(pod),
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
            (pod.metadata.annotations or {}).get(KEY) in kept and claim_of(pod) is None)]
        for pod in pods:
            if pod not in stay:
                self._delete(pod.metadata.name)
        stop_pods(self.cluster, [pod.metadata.name for pod in stay])
        return len(pods) - len(stay)

    def stop_processes(self, run_id: str) -> None:
        """Every worker process of the run ends; the Pods and their files stay."""
        try:
            stop_pods(self.cluster, [pod.metadata.name for pod in self._pods()
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
        return self.cluster.answers(ENGINE_PATIENCE)


