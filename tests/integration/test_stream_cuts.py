"""A stream that breaks is not a lost engine. Between runner and the engine (the test
cluster's API server; the test Docker engine over TCP) sits a proxy of the test's own
(tests/engines/cutter.py) that closes upgraded connections (pods/exec websockets, Docker's
hijacked exec streams) on command while the engine stays up: the run goes on, what may run
again runs again (the history bundle's upload, a read of a command's output, the bundle of
the worker's commits), saying so in the ticket's log; the agent's own command cut mid-way
ends only its attempt as stopped, and its retry integrates. The same proxy dropping
everything for longer than runner waits for an answer is exit 3, and a resume finishes."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runner.sandbox import START_MARK
from tests.engines.cutter import CuttingProxy
from tests.engines.dind import RemoteEngine
from tests.engines.kube import TestCluster
from tests.helpers import git, make_repo, run_json, runner_cli, write_phase

pytestmark = pytest.mark.timeout(1800)

RESOURCES = {"cpus": 0.2, "memory": "512m"}
CUT = "runner-test-cut-me-now"
# Printed once in each attempt; only the first is cut (the proxy cuts once per command).
CUT_TICKET = f"echo {CUT}; sleep 3; echo cut > cut.txt"


def _phase(root: Path, **more: Any) -> tuple[Path, Path]:
    # A file big enough that the history bundle's upload is told by its size.
    repo = make_repo(root / "repo", {"README.md": "hello\n",
                                     "noise.txt": secrets.token_hex(100_000) + "\n"})
    phase = write_phase(root / "p.yaml", {
        "name": "cuts", "concurrency": 3, "resources": RESOURCES, **more, "tickets": [
            {"id": "CUT", "agent": "script", "retries": 1, "run": CUT_TICKET},
            {"id": "A", "agent": "script", "run": "echo a > a.txt"},
            {"id": "B", "agent": "script", "run": "echo b > b.txt"}]})
    return repo, phase


def _logs(repo: Path, run_id: str) -> str:
    return "\n".join(log.read_text() for log in
                     sorted((repo / ".git" / "runner" / run_id / "logs").glob("*.log")))


def _cut_and_carried_on(proxy: CuttingProxy, root: Path, engine: list[str],
                        env: dict[str, str], *, uploads: bool) -> None:
    proxy.cut_when(CUT.encode())                 # the agent's own command
    proxy.cut_when(START_MARK.encode())          # a read of a command's output
    proxy.cut_when(b"# v2 git bundle")           # a bundle of the worker's commits
    if uploads:
        proxy.cut_after_sent(32_000)             # the history bundle, on its way in
    repo, phase = _phase(root)
    proc, doc = run_json("run", str(phase), "--repo", str(repo), *engine, "--no-preflight",
                         env=env)
    assert proc.returncode == 0, proc.stderr
    assert len(proxy.cuts) == (4 if uploads else 3), proxy.cuts
    tickets = {t["id"]: t for t in doc["tickets"]}
    assert {k: t["status"] for k, t in tickets.items()} == dict.fromkeys(tickets,
                                                                           "integrated")
    cut = tickets["CUT"]
    assert [a["result"] for a in cut["attempts"]] == ["stopped", "integrated"], cut
    assert "broke" in cut["attempts"][0]["reason"], cut
    assert not tickets["A"]["reruns"] and not tickets["B"]["reruns"]
    assert "its container was stopped; rerun 1 queued" in proc.stderr
    target = doc["target"]
    assert git(repo, "show", f"{target}:a.txt") == "a"
    assert git(repo, "show", f"{target}:b.txt") == "b"
    assert git(repo, "show", f"{target}:cut.txt") == "cut"
    logs = _logs(repo, doc["run_id"])
    assert "what it started was stopped" in logs, logs
    again = [line for line in logs.splitlines() if "again" in line]
    # The bundle's cut is caught by its stream, or by git refusing what came of it.
    assert any("bundle" in line for line in again) and len(again) >= 2, logs
    if uploads:
        assert "; it is sent again" in logs, logs
    assert "Traceback" not in proc.stderr


def _dropped_then_resumed(proxy: CuttingProxy, root: Path, engine: list[str],
                          env: dict[str, str]) -> None:
    repo, phase = _phase(root)

    def has_started() -> bool:        # CUT's script runs (its 3 s sleep)
        return any(CUT in log.read_text()
                   for log in (repo / ".git" / "runner").glob("*/logs/CUT.log"))

    proc = subprocess.Popen([sys.executable, "-m", "runner", "run", str(phase), "--repo",
                             str(repo), *engine, "--no-preflight"], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 180
        while not has_started():
            assert time.monotonic() < deadline and proc.poll() is None, "nothing started"
            time.sleep(0.2)
        proxy.drop(3600)               # until runner gives up
        started = time.monotonic()
        out, err = proc.communicate(timeout=300)
        waited = time.monotonic() - started
    finally:
        proc.kill()
        proxy.drop(0)
    assert proc.returncode == 3, out + err
    assert "stopped answering" in err and "runner resume" in err, err
    assert "Traceback" not in err
    assert waited >= 15, f"runner gave up after {waited:.1f}s, before its patience ran out"
    [run_dir] = (repo / ".git" / "runner").iterdir()
    assert json.loads((run_dir / "run.json").read_text())["state"] == "interrupted"
    resumed = runner_cli("resume", run_dir.name, "--repo", str(repo), env=env)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    target = json.loads((run_dir / "run.json").read_text())["target"]
    for name, text in (("a.txt", "a"), ("b.txt", "b")):
        assert git(repo, "show", f"{target}:{name}") == text
    assert git(repo, "show", f"{target}:cut.txt") == "cut"


# --- Kubernetes ----------------------------------------------------------------------------

@pytest.fixture
def kube_proxy(kube_cluster: TestCluster, tmp_path: Path) -> Iterator[tuple[CuttingProxy,
                                                                              dict[str, str]]]:
    port = int(kube_cluster.url.rsplit(":", 1)[1])
    proxy = CuttingProxy(("127.0.0.1", port), tls=True)
    kubeconfig = tmp_path / "through-the-proxy.kubeconfig"
    kubeconfig.write_text(kube_cluster.kubeconfig.read_text().replace(kube_cluster.url,
                                                                     proxy.url))
    kubeconfig.chmod(0o600)
    try:
        yield proxy, {**os.environ, "KUBECONFIG": str(kubeconfig)}
    finally:
        proxy.close()


def test_pods_exec_streams_cut_on_the_way_are_run_again_or_retried(
        tmp_path: Path, kube_proxy) -> None:
    proxy, env = kube_proxy
    _cut_and_carried_on(proxy, tmp_path, ["--engine", "kubernetes"], env, uploads=True)


def test_an_api_server_unreachable_past_the_wait_is_exit_3_and_resume_finishes(
        tmp_path: Path, kube_proxy) -> None:
    proxy, env = kube_proxy
    _dropped_then_resumed(proxy, tmp_path, ["--engine", "kubernetes"], env)


# --- a remote Docker engine ----------------------------------------------------------------

@pytest.fixture
def docker_proxy(remote_engine: RemoteEngine, remote_worker_image: str
                 ) -> Iterator[CuttingProxy]:
    port = int(remote_engine.url.rsplit(":", 1)[1])
    proxy = CuttingProxy(("127.0.0.1", port))
    try:
        yield proxy
    finally:
        proxy.close()


def test_remote_docker_exec_streams_cut_on_the_way_are_run_again_or_retried(
        tmp_path: Path, docker_proxy: CuttingProxy) -> None:
    _cut_and_carried_on(docker_proxy, tmp_path, ["--engine", docker_proxy.url],
                        dict(os.environ), uploads=False)


def test_a_remote_engine_unreachable_past_the_wait_is_exit_3_and_resume_finishes(
        tmp_path: Path, docker_proxy: CuttingProxy) -> None:
    _dropped_then_resumed(docker_proxy, tmp_path, ["--engine", docker_proxy.url],
                          dict(os.environ))
