"""Real Gradle (Debian's 4.4.1, OpenJDK 17) in two workers at once: both builds succeed, each
daemon is registered only in its own worker's Gradle home, and the shared dependency cache
is read-only."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from runner.cli.demo import make_demo
from tests.helpers import git, run_json, write_phase

BUILD = """
date +%s.%N > "build-started-$RUNNER_TICKET"
gradle --offline build
test -f build/libs/demo.jar
date +%s.%N > "build-ended-$RUNNER_TICKET"
"""
SHARED_CACHE = """
echo "$GRADLE_RO_DEP_CACHE" > ro-env
cat /gradle-ro-cache/modules-2/marker > ro-read
if touch /gradle-ro-cache/modules-2/evil 2>/dev/null
then echo writable > ro-write; else echo blocked > ro-write; fi
"""
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


@pytest.fixture(scope="module")
def gradle_run(tmp_path_factory: pytest.TempPathFactory, jvm_image: str):
    root = tmp_path_factory.mktemp("gradle")
    repo, _ = make_demo(root)
    cache = root / "ro-cache"
    (cache / "modules-2").mkdir(parents=True)
    (cache / "modules-2" / "marker").write_text("shared\n")
    phase = write_phase(root / "gradle.yaml", {
        "name": "gradle", "image": jvm_image, "concurrency": 2,
        "gradle": {"shared_cache": str(cache)},
        "tickets": [{"id": "J1", "agent": "script", "run": BUILD + SHARED_CACHE},
                    {"id": "J2", "agent": "script", "run": BUILD}]})
    proc, doc = run_json("run", str(phase), "--repo", str(repo))
    return repo, proc, doc, cache


def test_both_builds_succeed_at_the_same_time(gradle_run) -> None:
    repo, proc, doc, _ = gradle_run
    assert proc.returncode == 0, proc.stderr
    logs = Path(doc["run_dir"]) / "logs"
    for ticket in ("J1", "J2"):
        assert "BUILD SUCCESSFUL" in (logs / f"{ticket}.log").read_text()
    span = {t: [float(git(repo, "show", f"{doc['target']}:build-{edge}-{t}"))
                for edge in ("started", "ended")] for t in ("J1", "J2")}
    assert span["J1"][0] < span["J2"][1] and span["J2"][0] < span["J1"][1], span
    # Build output stays out of the commits (the project ignores it).
    files = git(repo, "ls-tree", "-r", "--name-only", doc["target"]).split()
    assert not [f for f in files if f.startswith(("build/", ".gradle/"))]


def test_each_daemon_is_registered_only_in_its_own_home(gradle_run) -> None:
    _, _, doc, _ = gradle_run
    homes = {t: Path(doc["run_dir"]) / "gradle" / t for t in ("J1", "J2")}
    daemons, registries = {}, {}
    for ticket, home in homes.items():
        (version_dir,) = (home / "daemon").iterdir()
        logs = "".join(p.read_text(errors="replace") for p in version_dir.glob("daemon-*.log"))
        daemons[ticket] = set(re.findall(rf"DaemonContext\[uid=({UUID})", logs))
        registries[ticket] = set(re.findall(UUID, (version_dir / "registry.bin")
                                            .read_bytes().decode("latin-1")))
    assert len(daemons["J1"]) == 1 and len(daemons["J2"]) == 1
    assert daemons["J1"] != daemons["J2"]
    assert registries["J1"] == daemons["J1"]
    assert registries["J2"] == daemons["J2"]


def test_shared_cache_is_read_only(gradle_run) -> None:
    repo, _, doc, cache = gradle_run
    show = lambda path: git(repo, "show", f"{doc['target']}:{path}")  # noqa: E731
    assert show("ro-env") == "/gradle-ro-cache"
    assert show("ro-read") == "shared"
    assert show("ro-write") == "blocked"
    assert sorted(p.name for p in cache.rglob("*")) == ["marker", "modules-2"]
