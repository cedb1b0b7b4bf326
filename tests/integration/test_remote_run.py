"""A phase on another machine's Docker engine (the test engine: dockerd in a container,
reached over TCP on 127.0.0.1, sharing no disk with the runner) through `runner run
--engine tcp://…`: it integrates exactly as on the local engine, the self-test passes there,
and no path of the runner's machine is in any container spec it was sent."""

from __future__ import annotations

import io
import json
import secrets
from pathlib import Path

import pytest

from tests.helpers import (ENGINE_TICKETS as TICKETS, git, make_repo, run_json,
                           runner_cli, write_phase)



def _run(root: Path, *flags: str) -> tuple[Path, object, dict]:
    repo = make_repo(root / "repo", {"shared.txt": "base\n"})
    phase = write_phase(root / "p.yaml", {"name": "remote", "concurrency": 3,
                                           "tickets": TICKETS})
    proc, doc = run_json("run", str(phase), "--repo", str(repo), *flags)
    return repo, proc, doc


def _tree(repo: Path, ref: str) -> dict[str, str]:
    files = git(repo, "ls-tree", "-r", "--name-only", ref).split()
    return {f: git(repo, "show", f"{ref}:{f}") for f in files if f != "shared.txt"}


@pytest.fixture(scope="module")
def remote_run(tmp_path_factory: pytest.TempPathFactory, remote_engine, remote_worker_image):
    root = tmp_path_factory.mktemp("remote")
    repo, proc, doc = _run(root, "--keep", "--engine", remote_engine.url)
    specs = [c.attrs for c in remote_engine.client.containers.list(all=True)]
    yield {"root": root, "repo": repo, "proc": proc, "doc": doc, "specs": specs}
    for container in remote_engine.client.containers.list(all=True):
        container.remove(force=True)


def test_a_phase_integrates_on_the_remote_engine_as_on_the_local_one(
        remote_run, tmp_path: Path, worker_image: str) -> None:
    """The same phase on both engines: the same tickets integrate into the same tree."""
    proc, doc, repo = remote_run["proc"], remote_run["doc"], remote_run["repo"]
    assert proc.returncode == 0, proc.stderr
    assert "isolation self-test passed" in proc.stderr
    assert {t["id"]: t["status"] for t in doc["tickets"]} == {t["id"]: "integrated"
                                                              for t in TICKETS}
    local_repo, local, local_doc = _run(tmp_path / "local")
    assert local.returncode == 0, local.stderr
    assert _tree(repo, doc["target"]) == _tree(local_repo, local_doc["target"])
    shared = sorted(git(repo, "show", f"{doc['target']}:shared.txt").splitlines())
    assert shared == sorted(git(local_repo, "show",
                                f"{local_doc['target']}:shared.txt").splitlines())
    assert shared == ["base", "one", "two"]


def test_no_path_of_the_runners_machine_is_sent_to_the_engine(remote_run) -> None:
    specs = remote_run["specs"]
    assert len(specs) >= len(TICKETS)          # kept (--keep): what the engine was sent
    root = str(remote_run["root"])
    for spec in specs:
        assert all(m["Type"] == "volume" for m in spec["Mounts"]), spec["Mounts"]
        assert not spec["HostConfig"].get("Binds")
        assert root not in json.dumps(spec) and "/tmp/" not in json.dumps(spec["Config"])


def test_doctor_probes_the_remote_engine_and_copies_the_image_there(
        remote_engine, remote_worker_image, engine) -> None:
    """An image the remote engine lacks goes there from this machine (save | load), once;
    then the self-test runs there, with the same rules."""
    tag = f"runner-test-remote:{secrets.token_hex(3)}"
    dockerfile = f"FROM {remote_worker_image}\nLABEL runner.test=remote-copy\n".encode()
    engine.images.build(fileobj=io.BytesIO(dockerfile), tag=tag, rm=True, pull=False)
    try:
        proc = runner_cli("doctor", "--engine", remote_engine.url, "--image", tag)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert f"copying image {tag}" in proc.stderr
        assert f"at {remote_engine.url}" in proc.stdout and " 0 failed" in proc.stdout
        assert remote_engine.client.images.get(tag).id == engine.images.get(tag).id
        again = runner_cli("doctor", "--engine", remote_engine.url, "--image", tag)
        assert again.returncode == 0 and "copying image" not in again.stderr
    finally:
        engine.images.remove(tag, force=True)
        remote_engine.client.images.remove(tag, force=True)


def test_a_worker_over_its_disk_budget_is_stopped_on_the_remote_engine(
        tmp_path: Path, remote_engine, remote_worker_image) -> None:
    """The budget holds where runner cannot see the disk: du runs in the sandbox."""
    repo = make_repo(tmp_path / "repo")
    phase = write_phase(tmp_path / "p.yaml", {
        "name": "remote-disk", "resources": {"memory": "256m", "disk": "64m"}, "tickets": [
            {"id": "hog", "agent": "script", "timeout": 180,
             "run": "echo mine > mine.txt && git add mine.txt && git commit -qm mine\n"
                    "for i in $(seq 40); do head -c 8M /dev/zero > junk$i; sleep 0.2; done"},
            {"id": "ok", "agent": "script", "run": "echo ok > ok.txt"}]})
    proc, doc = run_json("run", str(phase), "--repo", str(repo), "--engine", remote_engine.url)
    tickets = {t["id"]: t for t in doc["tickets"]}
    assert tickets["ok"]["status"] == "integrated", proc.stderr
    hog = tickets["hog"]
    assert hog["status"] == "failed"
    assert "over its disk budget" in hog["reason"] and "budget 64 MiB" in hog["reason"], hog
    # Stopped well before it wrote its 320 MiB; what it had committed is kept.
    written = float(hog["reason"].split("over its disk budget: ")[1].split(" MiB")[0])
    assert 64 < written < 200, hog["reason"]
    assert git(repo, "show", f"refs/runner/{doc['run_id']}/hog:mine.txt") == "mine"
