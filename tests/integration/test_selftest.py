"""The isolation self-test: healthy here, and it catches isolation that was broken on purpose."""

from __future__ import annotations

import io
import secrets
import time
from dataclasses import replace
from pathlib import Path

import docker
import pytest

from runner.errors import EnvironmentProblem
from runner.host.gitops import open_host_repo
from runner.host.objectstore import STORE, RunObjects
from runner.isolation import selftest
from runner.isolation.selftest import SELFTEST, run_selftest
from runner.phase.load import load_phase
from runner.records.events import EventCollector
from runner.sandbox.docker.local import DockerSandboxes
from runner.sandbox.docker.workspace import Workspace, create_workspace
from runner.worker.context import RunContext
from tests.helpers import git, make_repo, run_json, runner_cli, write_phase


def test_doctor_passes_and_prints_the_table(worker_image: str) -> None:
    proc = runner_cli("doctor")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for check in ("Docker answers", "other worker's files invisible", "Gradle home private",
                  "no docker socket", "no host secrets in env", "host repo unreachable",
                  "runs as the worker's user", "disk space for workspaces", "Claude Code binary",
                  "gateway answers, as its own", "unlisted host refused"):
        assert check in proc.stdout
    assert " 0 failed" in proc.stdout


@pytest.fixture
def probe_ctx(tmp_path: Path, engine: docker.DockerClient, worker_image: str):
    repo = make_repo(tmp_path / "repo")
    phase = load_phase(write_phase(tmp_path / "p.yaml", {
        "name": "sabotage", "tickets": [{"id": "X", "agent": "script", "run": "true"}]}))
    host, run_id, head = open_host_repo(repo), f"test-{secrets.token_hex(3)}", git(
        repo, "rev-parse", "HEAD")
    objects = RunObjects(host, path=tmp_path / "run" / STORE, run_id=run_id, base=head)
    ctx = RunContext(run_id=run_id, phase=phase, host=host, root=tmp_path / "run",
                     objects=objects, provider=DockerSandboxes(engine, root=tmp_path / "run"),
                     sink=EventCollector())
    yield ctx, head
    ctx.provider.settle()           # the probes' containers go in the background: gone now


def _failed(result) -> set[str]:
    return {c.name for c in result.failed}


def test_real_probes_pass(probe_ctx) -> None:
    ctx, head = probe_ctx
    result = run_selftest(ctx, head)
    assert result.passed, result.failed
    assert len(result.checks) >= 15


def _made(ctx: RunContext, name: str, head: str) -> Workspace:
    """A probe's checkout made ahead, where the local engine's provider keeps it."""
    base = ctx.root / SELFTEST
    return create_workspace(ctx.objects, clone=base / "workspaces" / name,
                            gradle_home=base / "gradle" / name, branch=ctx.branch(name),
                            start=head)


def test_shared_clone_is_caught(probe_ctx) -> None:
    ctx, head = probe_ctx
    _made(ctx, "shared", head)
    result = run_selftest(ctx, head, checkout_for=lambda probe: ctx.checkout(
        "shared", head, place=SELFTEST, fresh=False))
    assert {"other worker's files invisible", "Gradle home private"} <= _failed(result)
    invisible = next(c for c in result.checks if c.name == "other worker's files invisible")
    assert "marker is 'visible'" in invisible.detail and invisible.fix


def test_shared_gradle_home_is_caught(probe_ctx) -> None:
    ctx, head = probe_ctx
    first, second = (_made(ctx, probe, head) for probe in ("_probe1", "_probe2"))
    second.gradle_home.rmdir()
    second.gradle_home.symlink_to(first.gradle_home)    # both mount the same directory
    result = run_selftest(ctx, head, checkout_for=lambda probe: ctx.checkout(
        probe, head, place=SELFTEST, fresh=False))
    assert _failed(result) == {"Gradle home private"}


def test_probes_that_never_run_at_once_are_a_clear_error(probe_ctx, monkeypatch) -> None:
    """An engine with room for one worker at a time (a cluster full but for one Pod): the
    second probe comes only once the first gave up waiting, and that is said, plainly."""
    ctx, head = probe_ctx
    monkeypatch.setattr(selftest, "TOGETHER_TIMEOUT", 1)

    def second_comes_late(probe: str):
        if probe == "_probe2":
            time.sleep(4)
        return ctx.checkout(probe, head, place=SELFTEST)

    with pytest.raises(EnvironmentProblem, match="never ran at once .* room for two workers"):
        run_selftest(ctx, head, checkout_for=second_comes_late)


def test_real_probes_run_through_the_supervisor(probe_ctx) -> None:
    ctx, head = probe_ctx
    result = run_selftest(ctx, head)
    check = next(c for c in result.checks if c.name == "the supervisor out of the worker's reach")
    assert check.passed, check.detail
    ctx.provider.settle()      # the probes' checkouts go
    with ctx.provider.open(selftest_spec(ctx, head)) as sandbox:     # as a probe's is
        assert sandbox.supervised and sandbox.commands_via == "the supervisor"


def selftest_spec(ctx: RunContext, head: str):
    from runner.worker import sandbox_spec
    return sandbox_spec(ctx, "_probe1", ctx.checkout("_probe1", head, place=SELFTEST))


def test_a_supervisor_under_the_workers_uid_is_caught(probe_ctx, monkeypatch) -> None:
    """The supervisor started as the worker's own uid: the worker could signal it (not trace
    it: it holds capabilities the worker lacks); the self-test says so."""
    from runner.sandbox import supervisor
    from runner.sandbox.docker import local

    ctx, head = probe_ctx
    monkeypatch.setattr(supervisor, "SUPERVISOR_USER", ctx.user)
    monkeypatch.setattr(local, "can_supervise", lambda worker: True)
    result = run_selftest(ctx, head)
    assert _failed(result) == {"the supervisor out of the worker's reach"}
    detail = next(c for c in result.failed).detail
    assert f"runs as the worker's uid ({ctx.user.split(':')[0]})" in detail
    assert "the worker reaches it: signal" in detail


def test_borrowing_the_host_repos_objects_is_caught(probe_ctx) -> None:
    """The old scheme: clones borrowing the host's own store see every object in it."""
    ctx, head = probe_ctx
    whole_host = RunObjects(ctx.host, path=ctx.host.git_dir, run_id=ctx.run_id, base=head)
    result = run_selftest(replace(ctx, objects=whole_host), head)
    assert _failed(result) == {"other host objects unreadable"}


@pytest.fixture
def image_with(engine: docker.DockerClient, worker_image: str):
    """Build small images FROM the worker image with the given Dockerfile lines; each has a
    tag of its own (other suites share the engine) and is removed after the test."""
    built: list[str] = []

    def build(*lines: str) -> str:
        tag = f"runner-test-env-{secrets.token_hex(4)}:latest"
        dockerfile = "\n".join([f"FROM {worker_image}", *lines]) + "\n"
        engine.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True,
                            labels={"runner.test": "selftest-env"})
        built.append(tag)
        return tag

    yield build
    for tag in built:
        engine.images.remove(tag, force=True)


@pytest.fixture
def leaky_image(image_with) -> str:
    """An image that bakes a Docker endpoint and a token into every container's env."""
    return image_with("ENV DOCKER_HOST=tcp://127.0.0.1:2375 DEPLOY_TOKEN=t0k3n")


def _secrets_check(ctx: RunContext, head: str, image: str):
    result = run_selftest(replace(ctx, phase=ctx.phase.model_copy(update={"image": image})),
                          head)
    return result, next(c for c in result.checks if c.name == "no host secrets in env")


def test_ordinary_image_settings_pass_though_the_host_has_them(
        probe_ctx, image_with, monkeypatch: pytest.MonkeyPatch) -> None:
    """The names are in runner's own environment too, with the same values: the old rule
    (any name the host has) refused such images."""
    ctx, head = probe_ctx
    image = image_with("ENV LANG=C.UTF-8", "ENV PYTHONDONTWRITEBYTECODE=1",
                       "ENV JAVA_HOME=/usr/lib/jvm/java-17-openjdk-amd64",
                       "ENV GPG_KEY=7169605F62C751356D054A26A821E680E5FA6305")
    for name in ("LANG", "PYTHONDONTWRITEBYTECODE", "JAVA_HOME", "GPG_KEY"):
        monkeypatch.setenv(name, ctx.provider.image_env(image)[name])
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-host-secret-not-in-the-image")
    result, check = _secrets_check(ctx, head, image)
    assert result.passed, result.failed
    assert check.passed and not check.detail


def test_a_secret_baked_into_an_image_is_refused(probe_ctx, image_with) -> None:
    ctx, head = probe_ctx
    image = image_with("ENV LANG=C.UTF-8", "ENV ANTHROPIC_API_KEY=sk-ant-baked-in-0123456789")
    result, check = _secrets_check(ctx, head, image)
    assert _failed(result) == {"no host secrets in env"}
    assert f"ANTHROPIC_API_KEY (from the image {image}) looks like a secret" in check.detail
    assert "LANG" not in check.detail and "sk-ant" not in check.detail   # never the value
    assert "rebuild the image without it" in check.fix


def test_a_host_secret_under_another_name_is_refused(
        probe_ctx, image_with, monkeypatch: pytest.MonkeyPatch) -> None:
    """Judged by value too: the image holds what the host has as a secret."""
    ctx, head = probe_ctx
    value = f"ghp_{secrets.token_hex(12)}"
    monkeypatch.setenv("GITHUB_TOKEN", value)
    image = image_with(f"ENV HELPER_URL={value}")
    result, check = _secrets_check(ctx, head, image)
    assert _failed(result) == {"no host secrets in env"}
    assert (f"HELPER_URL (from the image {image}) has the value of the host's GITHUB_TOKEN"
            in check.detail)
    assert value not in check.detail


def test_preflight_stops_a_run_before_any_ticket(tmp_path: Path, leaky_image: str) -> None:
    repo = make_repo(tmp_path / "repo")
    phase = write_phase(tmp_path / "p.yaml", {"name": "leaky", "image": leaky_image, "tickets": [
        {"id": "A", "agent": "script", "run": "echo a > a"}]})
    proc = runner_cli("run", str(phase), "--repo", str(repo))
    assert proc.returncode == 3
    last = proc.stderr.strip().splitlines()[-1]
    assert "isolation self-test failed, no ticket started: no DOCKER_HOST" in last
    refs = git(repo, "for-each-ref", "--format=%(refname)", "refs/runner/").split()
    assert [ref.rsplit("/", 1)[1] for ref in refs] == ["base"]      # no ticket's ref
    # Skipping the preflight is the user's explicit choice.
    proc, doc = run_json("run", str(phase), "--repo", str(repo), "--no-preflight")
    assert proc.returncode == 0 and doc["preflight"] == "skipped"


def test_preflight_runs_by_default(tmp_path: Path, worker_image: str) -> None:
    repo = make_repo(tmp_path / "repo")
    phase = write_phase(tmp_path / "p.yaml", {"name": "pre", "tickets": [
        {"id": "A", "agent": "script", "run": "echo a > a"}]})
    proc, doc = run_json("run", str(phase), "--repo", str(repo))
    assert proc.returncode == 0
    assert doc["preflight"].startswith("passed (21 checks")
