"""`runner doctor`: is this machine ready, and does isolation hold here, proven by probes."""

from __future__ import annotations

import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from runner.agents import kinds_where
from runner.errors import RunnerError
from runner.host import STORE, RunObjects, git, git_out, open_host_repo, scratch_parent
from runner.isolation.imagecheck import image_refusal
from runner.isolation.selftest import Check, run_selftest
from runner.phase import Phase, Resources, Ticket
from runner.records import EventSink
from runner.sandbox import (BUILDABLE, KUBERNETES, LOCAL, WORKER_DOCKERFILE, Backend, Engine,
                            connect, resolve)
from runner.worker import RunContext, gateway_for

MIN_FREE_BYTES = 2 * 2**30
DEFAULT_IMAGE = "runner-worker:latest"


@dataclass(frozen=True)
class DoctorReport:
    engine: str
    checks: tuple[Check, ...]
    selftest_seconds: float
    title: str = "Docker"         # what kind of engine it is

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)


def run_doctor(sink: EventSink, *, state_dir: Path, image: str = DEFAULT_IMAGE,
               engine_name: str = LOCAL) -> DoctorReport:
    engine = resolve(engine_name)
    try:
        backend = connect(engine)
        version = backend.version()
    except RunnerError as e:
        return DoctorReport("unreachable", (Check(f"{engine.title} answers", False, str(e),
                                                  f"start the {engine.title} engine"),), 0.0,
                            engine.title)
    where = "" if engine.local else f" at {engine.name}"
    checks = [Check(f"{engine.title} answers", True, f"engine {version}{where}")]
    checks += [_image_check(backend, name) for name in BUILDABLE]
    if engine.isolation_note is not None:
        name, _, detail = engine.isolation_note.partition(": ")
        checks.append(Check(name, True, detail))
    checks.append(_disk_check(state_dir))
    checks.append(_claude_check(engine))
    started = time.perf_counter()
    try:
        backend.ensure_image(image, sink)
        checks += selftest_in_scratch_repo(backend, sink, image, scratch=state_dir)
    except RunnerError as e:
        checks.append(Check("isolation self-test", False, str(e), "fix the error above"))
    return DoctorReport(version, tuple(checks), time.perf_counter() - started, engine.title)


def selftest_in_scratch_repo(backend: Backend, sink: EventSink, image: str, *,
                             scratch: Path) -> list[Check]:
    """Run the self-test over a throwaway repo, with default phase settings; the repo goes
    under ``scratch`` when runner runs in a container (the host must see it)."""
    with tempfile.TemporaryDirectory(prefix="runner-doctor-",
                                     dir=scratch_parent(scratch)) as tmp:
        root = Path(tmp)
        repo = root / "repo"
        git(root, "init", "--quiet", str(repo))
        git(repo, "-c", "user.name=runner", "-c", "user.email=runner@localhost", "commit",
            "--quiet", "--allow-empty", "-m", "doctor")
        # A shell ticket of a kind that gets the gateway, so the way out is proven here too.
        agent = kinds_where(works_from="run", needs_gateway=True)[0]
        # The probes only look around: half a core each, so that two fit side by side on a
        # small cluster's node, relays and all.
        phase = Phase(name="doctor", image=image, resources=Resources(cpus=0.5, memory="1g"),
                      tickets=[Ticket(id="probe", agent=agent, run="true")])
        host, run_id = open_host_repo(repo), f"doctor-{secrets.token_hex(3)}"
        head = git_out(repo, "rev-parse", "HEAD")
        objects = RunObjects(host, path=root / "run" / STORE, run_id=run_id, base=head)
        ctx = RunContext(run_id=run_id, phase=phase, host=host, root=root / "run",
                         objects=objects, sink=sink,
                         provider=backend.provider(run_id=run_id, root=root / "run"))
        with gateway_for(ctx) as ctx:
            lacking = image_refusal(ctx)
            found = [Check("image has what runner runs in workers", not lacking,
                           lacking or "", "add it to the image" if lacking else "")]
            return found + list(run_selftest(ctx, head).checks)


def _image_check(backend: Backend, name: str) -> Check:
    if backend.has_image(name):
        return Check(f"image {name}", True, "present")
    if not backend.engine.receives_images:
        return Check(f"image {name}", True, "on none of the cluster's nodes yet: they pull it "
                     "when a Pod starts, so a registry they reach must have it")
    if not backend.shares_disk:
        return Check(f"image {name}", True, "missing; a run sends it from this machine "
                     f"(`runner images build --engine {backend.engine.name}` does it now)")
    if WORKER_DOCKERFILE.is_file():
        return Check(f"image {name}", True, "missing; `runner images build` builds it")
    return Check(f"image {name}", False, f"missing and no {WORKER_DOCKERFILE}",
                 "run runner from its source checkout, or load the image")


def _claude_check(engine: Engine) -> Check:
    """Which Claude Code a claude-code ticket would run (with no `claude.binary` in its
    phase); none is a problem only for such tickets."""
    from runner.agents import binary_version, find_binary

    try:
        binary = find_binary()
        size = f"{binary.path.stat().st_size / 2**20:.0f} MiB"
        how = ("" if engine.local else
               f"; it reaches Pods in an image of the phase's with it ('<image>:carries-…', "
               f"built here) once every node has that image, else a copy ({size}) is sent "
               "into each claude-code Pod" if engine.kind == KUBERNETES else
               f"; sent to the engine once ({size}), into a volume named by its sha256")
        return Check("Claude Code binary", True,
                     f"{binary.path} ({binary.source}): {binary_version(binary)}{how}")
    except RunnerError as e:
        return Check("Claude Code binary", True, f"none usable, needed only by claude-code "
                     f"tickets: {e}")


def _disk_check(state_dir: Path) -> Check:
    probe = state_dir
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    ok = free >= MIN_FREE_BYTES
    return Check("disk space for workspaces", ok, f"{free / 2**30:.1f} GiB free at {probe}",
                 "" if ok else "free some space, or point --state-dir at a bigger disk")
