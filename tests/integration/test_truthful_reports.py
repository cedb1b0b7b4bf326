"""What a run reports is exactly what happened, readable where CI users read it: JUnit red
exactly when the exit code is not 0, summaries that cut nothing in a CI log, the story of
a conflict, sequential runs, refused runs, --land that did not land."""

from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import docker
import pytest

from runner.records.document import run_document
from runner.records.record import load_result
from tests.helpers import ROOT, git, make_repo, run_json, runner_cli, write_phase

SCHEMA = ROOT / "tests" / "data" / "junit.xsd"
LONG_CHECK = ("test -f this-file-is-never-there-because-no-ticket-ever-writes-it-so-the-"
              "check-fails-with-a-long-reason")


def _junit(path: Path) -> ET.Element:
    """Parsed, after xmllint has validated it against the schema of what CI tools read."""
    checked = subprocess.run(["xmllint", "--noout", "--schema", str(SCHEMA), str(path)],
                             capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    return ET.parse(path).getroot()


def _cases(root: ET.Element) -> dict[str, ET.Element]:
    return {c.get("name"): c for c in root.iter("testcase")}


@pytest.fixture(scope="module")
def failing_phase(tmp_path_factory: pytest.TempPathFactory, worker_image: str):
    """Phase checks that fail because of ticket BREAK; a ticket with a long reason."""
    root = tmp_path_factory.mktemp("truthful")
    repo = make_repo(root / "repo")
    phase = write_phase(root / "p.yaml", {"name": "truthful", "checks": [
        "echo checking the result; if test -f broken; then echo BROKEN-FOUND; exit 1; fi"],
        "tickets": [
            {"id": "GOOD", "agent": "script", "run": "echo good > good.txt; echo GOOD-SAID"},
            {"id": "BREAK", "agent": "script", "run": "touch broken"},
            {"id": "LONG", "agent": "script", "run": "echo long > long.txt",
             "checks": [LONG_CHECK]}]})
    junit = root / "junit.xml"
    proc = runner_cli("run", str(phase), "--repo", str(repo), "--junit", str(junit))
    return repo, proc, junit


def test_junit_is_red_with_the_culprit_when_phase_checks_fail(failing_phase) -> None:
    repo, proc, junit = failing_phase
    assert proc.returncode == 1, proc.stderr
    root = _junit(junit)
    cases = _cases(root)
    assert list(cases) == ["isolation self-test", "GOOD", "BREAK", "LONG", "phase checks"]
    checks = cases["phase checks"].find("failure")
    assert checks is not None and "from ticket BREAK on" in checks.get("message")
    assert "BROKEN-FOUND" in cases["phase checks"].findtext("system-out")
    assert cases["isolation self-test"].find("failure") is None
    assert "GOOD-SAID" in cases["GOOD"].findtext("system-out")
    assert cases["LONG"].find("failure") is not None
    # The same report, later, from the run's record.
    run_id = json.loads(next((repo / ".git" / "runner").glob("*/run.json")).read_text())["run_id"]
    again = runner_cli("report", run_id, "--repo", str(repo), "--format", "junit")
    saved = junit.with_name("again.xml")
    saved.write_text(again.stdout)
    assert _cases(_junit(saved))["phase checks"].find("failure") is not None
    assert root.find("testsuite").get("failures") == "2"


def test_the_plain_summary_cuts_nothing(failing_phase) -> None:
    _, proc, _ = failing_phase
    out = proc.stdout
    assert "…" not in out
    rows = {line.split(" | ")[0]: line for line in out.splitlines() if " | result: " in line}
    assert set(rows) == {"GOOD", "BREAK", "LONG"}
    assert "result: failed" in rows["LONG"] and LONG_CHECK in rows["LONG"]
    assert "result: integrated" in rows["GOOD"]
    assert "the phase checks fail from this ticket on" in rows["BREAK"]
    # A script-only phase: no tokens, cost, model or tier to speak of.
    assert not any(word in out for word in ("tokens:", "cost:", "model:", "tier:"))


def test_a_passing_phase_has_no_failure(tmp_path: Path, worker_image: str) -> None:
    repo = make_repo(tmp_path / "repo")
    phase = write_phase(tmp_path / "p.yaml", {"name": "green", "checks": ["test -f a.txt"],
                                              "tickets": [{"id": "A", "agent": "script",
                                                           "run": "echo a > a.txt"}]})
    junit = tmp_path / "junit.xml"
    proc = runner_cli("run", str(phase), "--repo", str(repo), "--junit", str(junit),
                      "--no-preflight")
    assert proc.returncode == 0, proc.stderr
    root = _junit(junit)
    assert root.find("testsuite").get("failures") == "0"
    assert list(_cases(root)) == ["isolation self-test", "A", "phase checks"]
    assert _cases(root)["isolation self-test"].find("skipped") is not None


def test_a_conflict_then_an_empty_rerun_is_told_everywhere(tmp_path: Path,
                                                           worker_image: str) -> None:
    """T1 conflicts with T2; its rerun on top of T2 changes nothing: T1's change is not on
    the target, and every report says why."""
    repo = make_repo(tmp_path / "repo", {"app.txt": "zero\n"})
    phase = write_phase(tmp_path / "p.yaml", {"name": "story", "tickets": [
        {"id": "T1", "agent": "script",
         "run": "if grep -q two app.txt; then exit 0; fi\nsleep 3\necho one > app.txt"},
        {"id": "T2", "agent": "script", "run": "echo two > app.txt"}]})
    proc = runner_cli("run", str(phase), "--repo", str(repo), "--no-preflight")
    assert proc.returncode == 1, proc.stderr
    [run_dir] = (repo / ".git" / "runner").iterdir()
    run_id = run_dir.name
    kept = f"refs/runner/{run_id}/attempts/T1/1"
    story = "conflicted with T2 in app.txt"
    [summary] = [line for line in proc.stdout.splitlines() if line.startswith("T1 | ")]
    assert story in summary and "changed nothing" in summary and kept in summary
    assert story in runner_cli("status", run_id, "--repo", str(repo)).stdout
    report = runner_cli("report", run_id, "--repo", str(repo)).stdout
    assert story in report.replace("\\", "") and "## Attempts" in report
    record = json.loads((run_dir / "run.json").read_text())["outcomes"]["T1"]
    assert record["conflict"] is True and record["conflicts_with"] == ["T2"]
    assert [a["result"] for a in record["attempts"]] == ["conflicted", "changed nothing"]
    doc = run_document(load_result(run_dir))           # what --json prints
    [t1] = [t for t in doc.tickets if t.id == "T1"]
    assert t1.conflict and t1.conflict_files == ["app.txt"] and t1.conflicts_with == ["T2"]
    assert t1.ref == f"refs/runner/{run_id}/T1" and t1.attempts[0].ref == kept
    assert git(repo, "show", f"{kept}:app.txt") == "one"
    assert git(repo, "show", f"{t1.ref}:app.txt") == "one"        # the ref holds it too
    assert t1.seconds == pytest.approx(sum(a.seconds for a in t1.attempts), abs=0.01)
    assert t1.attempts[0].seconds >= 3
    svg = ET.parse(run_dir / "timeline.svg").getroot()
    bars = [r.get("data-row") for r in svg.iter("{http://www.w3.org/2000/svg}rect")]
    assert bars.count("T1") == 2                        # one segment per attempt


def test_sequential_tickets_start_from_the_integrated_head(tmp_path: Path,
                                                           worker_image: str) -> None:
    repo = make_repo(tmp_path / "repo", {"app.txt": "zero\n"})
    phase = write_phase(tmp_path / "p.yaml", {"name": "seq", "tickets": [
        {"id": "S1", "agent": "script", "run": "echo one > app.txt"},
        {"id": "S2", "agent": "script", "run": "echo two >> app.txt"}]})
    proc, doc = run_json("run", str(phase), "--repo", str(repo), "--sequential",
                         "--no-preflight")
    assert proc.returncode == 0, proc.stderr
    s1, s2 = doc["tickets"]
    assert not s1["conflict"] and not s2["conflict"] and s1["reruns"] == s2["reruns"] == 0
    record = json.loads((Path(doc["run_dir"]) / "run.json").read_text())
    assert record["integrated"][0][0] == "S1"
    assert s2["start"] == record["integrated"][0][1]
    assert git(repo, "show", f"{doc['target']}:app.txt") == "one\ntwo"


SECRET_IMAGE = "runner-test-secret-env:latest"


def test_a_run_refused_by_the_self_test_is_recorded_as_refused(
        tmp_path: Path, engine: docker.DockerClient, worker_image: str) -> None:
    import io

    engine.images.build(fileobj=io.BytesIO(
        f"FROM {worker_image}\nENV ANTHROPIC_API_KEY=sk-baked-in\n".encode()),
        tag=SECRET_IMAGE, rm=True)
    try:
        repo = make_repo(tmp_path / "repo")
        phase = write_phase(tmp_path / "p.yaml", {"name": "refused", "image": SECRET_IMAGE,
                                                  "tickets": [{"id": "A", "agent": "script",
                                                               "run": "true"}]})
        junit = tmp_path / "junit.xml"
        proc, doc = run_json("run", str(phase), "--repo", str(repo), "--junit", str(junit))
    finally:
        engine.images.remove(SECRET_IMAGE, force=True)
    assert proc.returncode == 3
    assert "isolation self-test failed" in proc.stderr.strip().splitlines()[-1]
    assert "Traceback" not in proc.stderr
    assert doc["state"] == "refused" and doc["exit_code"] == 3
    record = json.loads((Path(doc["run_dir"]) / "run.json").read_text())
    assert record["state"] == "refused" and record["exit_code"] == 3
    assert "ANTHROPIC_API_KEY" in record["refused"]
    # A's checkout, made while the self-test ran, went with the refusal.
    assert not (Path(doc["run_dir"]) / "workspaces").exists()
    status = runner_cli("status", "--repo", str(repo)).stdout
    assert "refused" in status and "interrupted" not in status
    assert "ANTHROPIC_API_KEY" in runner_cli("status", doc["run_id"], "--repo",
                                             str(repo)).stdout
    resumed = runner_cli("resume", doc["run_id"], "--repo", str(repo))
    assert resumed.returncode == 3 and "nothing to resume" in resumed.stderr
    assert _cases(_junit(junit))["isolation self-test"].find("failure") is not None


def test_land_with_a_tag_base_is_refused_before_anything_runs(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    git(repo, "tag", "v1")
    phase = write_phase(tmp_path / "p.yaml", {"name": "tagged", "base": "v1", "tickets": [
        {"id": "A", "agent": "script", "run": "true"}]})
    proc = runner_cli("run", str(phase), "--repo", str(repo), "--land")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "runner: error: --land fast-forwards base to target, but base 'v1' is not a branch (a "
        "tag or a commit cannot move): set `base:` to a branch, or run without --land"]
    assert not (repo / ".git" / "runner").exists()
