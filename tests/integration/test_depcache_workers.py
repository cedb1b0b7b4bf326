"""Workers' own tools through the dependency cache, on real Docker: pip in a project image
built from the repo's Dockerfile (Debian's python3-pip), against the test's own index and
against the real Python package index; cargo (Debian's cargo-web) building a crate with
dependencies from the real crate registry, not --offline. Two workers at once fetch each
artifact upstream once; the next run fetches none; each ticket's record says so."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.package_index import PackageIndex, make_wheel
from tests.helpers import git, make_repo, run_json, write_phase

PIP_IMAGE = """FROM debian:bookworm-slim
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \\
      python3 python3-pip && rm -rf /var/lib/apt/lists/*
"""
CARGO_IMAGE = """FROM debian:bookworm-slim
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \\
      cargo-web libc6-dev && rm -rf /var/lib/apt/lists/*
"""


def pip_install(*packages: str) -> str:
    """A ticket's script: install through the worker's own pip (its index is the cache's
    mirror, from PIP_INDEX_URL), then record what it imported."""
    names = " ".join(packages)
    modules = ", ".join(p.split("==")[0].replace("-", "_") for p in packages)
    return (f"python3 -m pip install --no-cache-dir --disable-pip-version-check -q "
            f"--target /tmp/deps {names}\n"
            f"PYTHONPATH=/tmp/deps python3 -c 'import {modules}; print(\"ok\")' > installed.txt\n")


def fetch_events(run_dir: Path, ticket: str) -> list[dict]:
    path = run_dir / "transcripts" / f"{ticket}.jsonl"
    events = [json.loads(line) for line in path.read_text().splitlines()]
    return [e for e in events if e["kind"] == "cache"]


def artifacts_from_upstream(run_dir: Path, tickets: list[str]) -> list[str]:
    return [e["what"] for t in tickets for e in fetch_events(run_dir, t)
            if e["source"] == "upstream" and not e["what"].startswith("index of")]


def run_twice(phase_file: Path, repo: Path) -> list[dict]:
    """Two runs of the phase, one after the other (the second finds the cache warm)."""
    docs = []
    for _run in range(2):
        proc, doc = run_json("run", str(phase_file), "--repo", str(repo), "--allow-overlap")
        logs = Path(doc.get("run_dir", ".")) / "logs"
        assert proc.returncode == 0, proc.stderr + "".join(
            log.read_text()[-3000:] for log in logs.glob("*.log"))
        docs.append(doc)
    return docs


def two_tickets(script: str) -> list[dict]:
    return [{"id": "A", "agent": "script", "run": script},
            {"id": "B", "agent": "script", "run": script.replace("installed.txt", "b.txt")}]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "proj", {"README.md": "a project\n", "Dockerfile": PIP_IMAGE,
                                         "session.txt": secrets.token_hex(8)})


def test_two_workers_pip_install_through_the_cache_each_artifact_fetched_once(
        tmp_path: Path, repo: Path, worker_image: str) -> None:
    with PackageIndex() as index:
        names = {}
        for project, version, requires in (("alpha", "1.0", ("beta",)), ("beta", "2.0", ())):
            filename, wheel = make_wheel(project, version, requires)
            index.add_wheel(project, filename, wheel)
            names[project] = filename
        phase = {"name": "deps", "image": {"dockerfile": "proj/Dockerfile", "context": "proj"},
                 "concurrency": 2,
                 "cache": {"mirrors": {"pypi": f"{index.url}/simple/"},
                           "dir": str(tmp_path / "cache")},
                 "tickets": two_tickets(pip_install("alpha"))}
        phase_file = write_phase(tmp_path / "phase.yaml", phase)
        first, second = run_twice(phase_file, repo)
        # Each wheel once upstream, for two workers and two runs.
        assert {f"/files/{n}": 1 for n in names.values()}.items() <= index.hits.items()
    assert git(repo, "show", f"{first['target']}:installed.txt") == "ok"
    assert sorted(artifacts_from_upstream(Path(first["run_dir"]), ["A", "B"])) == sorted(
        f"{n} (sha256 {index_sha(index, n)[:12]}…)" for n in names.values())
    assert artifacts_from_upstream(Path(second["run_dir"]), ["A", "B"]) == []
    fetched = {t["id"]: t["fetched"] for t in second["tickets"]}
    assert all(f["cache_requests"] >= 2 and f["failed"] == 0 for f in fetched.values())
    log = (Path(second["run_dir"]) / "logs" / "A.log").read_text()
    assert f"runner: gateway: cache: pypi: {names['alpha']}" in log and "from the cache" in log


def index_sha(index: PackageIndex, filename: str) -> str:
    import hashlib

    data = next(f[filename] for f in index.wheels.values() if filename in f)
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def crates_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A cargo home of this machine's own cargo that has used the crate registry once: so
    runner reads the upstream from it, as it would from a user's."""
    home = tmp_path_factory.mktemp("cargo-home")
    probe = make_repo(tmp_path_factory.mktemp("probe") / "p", {
        "Cargo.toml": '[package]\nname = "probe"\nversion = "0.1.0"\nedition = "2021"\n\n'
                      '[dependencies]\nitoa = "1"\n', "src/main.rs": "fn main() {}\n"})
    subprocess.run(["cargo", "generate-lockfile"], cwd=probe, check=True, capture_output=True,
                   env={**os.environ, "CARGO_HOME": str(home)}, timeout=300)
    yield home


CRATE = {
    "Cargo.toml": '[package]\nname = "hello"\nversion = "0.1.0"\nedition = "2021"\n\n'
                  '[dependencies]\nitoa = "1"\ncfg-if = "1"\nhex = "0.4"\n',
    "src/main.rs": 'fn main() {\n    let mut buf = itoa::Buffer::new();\n'
                   '    println!("{} {}", buf.format(42), hex::encode("hi"));\n}\n',
    "Dockerfile": CARGO_IMAGE,
}


def test_a_crate_builds_with_its_dependencies_through_the_cache(
        tmp_path: Path, crates_home: Path, monkeypatch: pytest.MonkeyPatch,
        worker_image: str) -> None:
    monkeypatch.setenv("CARGO_HOME", str(crates_home))     # runner reads the upstream there
    repo = make_repo(tmp_path / "hello", {**CRATE, "session.txt": secrets.token_hex(8)})
    build = "cargo build -q && ./target/debug/hello > out.txt && rm -rf target\n"
    phase = {"name": "crate", "image": {"dockerfile": "hello/Dockerfile", "context": "hello"},
             "concurrency": 2, "resources": {"memory": "2g"},
             "cache": {"mirrors": ["crates"], "dir": str(tmp_path / "cache")},
             "tickets": [{"id": "A", "agent": "script", "run": build},
                         {"id": "B", "agent": "script", "run": build.replace("out.", "b.")}]}
    phase_file = write_phase(tmp_path / "phase.yaml", phase)
    first, second = run_twice(phase_file, repo)
    assert git(repo, "show", f"{first['target']}:out.txt") == "42 6869"
    got = artifacts_from_upstream(Path(first["run_dir"]), ["A", "B"])
    assert sorted(got) == sorted(set(got)) and {g.split()[0] for g in got} >= {
        "itoa", "cfg-if", "hex"}                      # each once, for both workers
    assert artifacts_from_upstream(Path(second["run_dir"]), ["A", "B"]) == []
    assert all(t["fetched"]["upstream_bytes"] < 100_000 for t in second["tickets"])


def test_the_real_python_package_index_through_the_cache(tmp_path: Path, repo: Path,
                                                         worker_image: str) -> None:
    """No upstream named: runner asks this machine's pip for its index."""
    phase = {"name": "pypi", "image": {"dockerfile": "proj/Dockerfile", "context": "proj"},
             "concurrency": 2,
             "cache": {"mirrors": ["pypi"], "dir": str(tmp_path / "cache")},
             "tickets": two_tickets(pip_install("six==1.16.0", "idna==3.7"))}
    phase_file = write_phase(tmp_path / "phase.yaml", phase)
    first, second = run_twice(phase_file, repo)
    got = artifacts_from_upstream(Path(first["run_dir"]), ["A", "B"])
    assert len(got) == 2 and len(set(got)) == 2        # six and idna, once each
    assert artifacts_from_upstream(Path(second["run_dir"]), ["A", "B"]) == []
