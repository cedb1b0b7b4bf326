"""The self-test proves the way out: with a gateway, each probe reaches its own gateway through
the forwarder, a CONNECT to an unlisted host is refused, there is no DNS, and the API key is in
no file runner made for it; each of these fails when it is broken on purpose."""

from __future__ import annotations

import io
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import docker
import pytest

from runner.gateway import Caller, Gateway
from runner.host.gitops import open_host_repo
from runner.host.objectstore import STORE, RunObjects
from runner.isolation.selftest import SELFTEST, run_selftest
from runner.phase.load import load_phase
from runner.records.events import EventCollector
from runner.records.ledger import Ledger
from runner.sandbox import Checkout
from runner.sandbox.docker.local import DockerSandboxes
from runner.sandbox.docker.workspace import create_workspace
from runner.worker.context import RunContext
from tests.helpers import git, make_repo, write_phase

KEY = "sk-ant-selftest-" + secrets.token_hex(12)


@pytest.fixture
def gateway_ctx(tmp_path: Path, engine: docker.DockerClient, worker_image: str,
                monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[RunContext, str]]:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    repo = make_repo(tmp_path / "repo")
    phase = load_phase(write_phase(tmp_path / "p.yaml", {
        "name": "way-out", "egress": ["example.invalid"],
        "tickets": [{"id": "X", "agent": "script", "run": "true"}]}))
    host, run_id, head = open_host_repo(repo), f"test-{secrets.token_hex(3)}", git(
        repo, "rev-parse", "HEAD")
    objects = RunObjects(host, path=tmp_path / "run" / STORE, run_id=run_id, base=head)
    ledger = Ledger(prices={})
    with Gateway(tmp_path / "run" / "gateway", ledger=ledger, egress=phase.egress) as gateway:
        yield RunContext(run_id=run_id, phase=phase, host=host, root=tmp_path / "run",
                         objects=objects,
                         provider=DockerSandboxes(engine, root=tmp_path / "run"),
                         sink=EventCollector(), ledger=ledger, gateway=gateway), head


def _check(result, name: str):
    return next(c for c in result.checks if c.name == name)


def test_the_way_out_is_proven(gateway_ctx) -> None:
    ctx, head = gateway_ctx
    result = run_selftest(ctx, head)
    assert result.passed, result.failed
    names = {c.name for c in result.checks}
    assert {"gateway answers, as its own", "unlisted host refused", "API key in no file",
            "no DNS", "no network (network: none)"} <= names


class _OneSocketForAll:
    """A broken gateway: every worker gets the first worker's socket."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway, self.first = gateway, None
        self.mirrors = gateway.mirrors
        self._lock = threading.Lock()      # the probes start at once

    @contextmanager
    def serve(self, caller: Caller) -> Iterator[Path]:
        with self._lock:
            first, owner = self.first, self.first is None
            if owner:
                served = self.gateway.serve(caller)
                first = self.first = served.__enter__()
        try:
            yield first
        finally:
            if owner:
                served.__exit__(None, None, None)


def test_a_shared_socket_is_caught(gateway_ctx) -> None:
    ctx, head = gateway_ctx
    result = run_selftest(replace(ctx, gateway=_OneSocketForAll(ctx.gateway)), head)
    check = _check(result, "gateway answers, as its own")
    assert not check.passed and "the gateway answered as" in check.detail


def test_an_image_without_socat_is_refused_saying_what_to_add(gateway_ctx,
                                                              engine: docker.DockerClient,
                                                              worker_image: str) -> None:
    ctx, head = gateway_ctx
    tag = f"runner-test-nosocat:{secrets.token_hex(3)}"
    dockerfile = f"FROM {worker_image}\nRUN rm -f /usr/bin/socat\n".encode()
    engine.images.build(fileobj=io.BytesIO(dockerfile), tag=tag, rm=True, pull=False)
    try:
        phase = ctx.phase.model_copy(update={"image": tag})
        result = run_selftest(replace(ctx, phase=phase), head)
    finally:
        engine.images.remove(tag, force=True)
    check = _check(result, "gateway answers, as its own")
    assert not check.passed and f"the image {tag} has no socat" in check.detail
    assert "apt-get install socat" in check.fix


def test_the_key_in_a_workspace_file_is_caught(gateway_ctx) -> None:
    ctx, head = gateway_ctx

    for probe in ("_probe1", "_probe2"):
        base = ctx.root / SELFTEST
        workspace = create_workspace(ctx.objects, clone=base / "workspaces" / probe,
                                     gradle_home=base / "gradle" / probe,
                                     branch=ctx.branch(probe), start=head)
        (workspace.gradle_home / "init.gradle").write_text(f"// key={KEY}\n")

    def leaky(probe: str) -> Checkout:
        return ctx.checkout(probe, head, place=SELFTEST, fresh=False)

    result = run_selftest(ctx, head, checkout_for=leaky)
    check = _check(result, "API key in no file")
    assert not check.passed and "init.gradle" in check.detail
    assert KEY not in check.detail
