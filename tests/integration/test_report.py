"""The postmortem a finished run writes: markdown with an SVG timeline, JSON, JUnit; and the
status and stats tables."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.helpers import make_repo, run_json, runner_cli, write_phase

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory, worker_image: str):
    root = tmp_path_factory.mktemp("report")
    repo = make_repo(root / "repo")
    phase = write_phase(root / "p.yaml", {"name": "reported", "tickets": [
        {"id": "OK", "agent": "script", "tier": "simple", "run": "echo ok > ok.txt"},
        {"id": "BAD", "agent": "script", "run": "exit 3"},
        {"id": "AFTER", "agent": "script", "depends_on": ["BAD"], "run": "true"}]})
    proc, doc = run_json("run", str(phase), "--repo", str(repo))
    assert proc.returncode == 1
    return repo, doc


def test_markdown_report_with_timeline(finished_run) -> None:
    repo, doc = finished_run
    proc = runner_cli("report", doc["run_id"], "--repo", str(repo))
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert f"# Phase reported — run {doc['run_id']}" in text
    assert "| OK | simple | - | integrated |" in text
    assert "**Isolation self-test:** passed (21 checks" in text
    assert "- **BAD** (failed): run exited with 3" in text
    assert "- **AFTER** (skipped): dependency BAD did not succeed" in text
    assert "Critical path:" in text and "![timeline of the workers](timeline.svg)" in text
    run_dir = Path(doc["run_dir"])
    assert (run_dir / "report.md").read_text() == text
    svg = ET.parse(run_dir / "timeline.svg").getroot()
    assert svg.tag == f"{SVG}svg"
    bars = [r.get("data-row") for r in svg.iter(f"{SVG}rect") if r.get("class") == "bar"]
    assert bars == ["self-test", "OK", "BAD"]     # the run's own row, then tickets'
    rows = [t.text for t in svg.iter(f"{SVG}text") if t.get("font-family") == "monospace"]
    assert rows == ["self-test", "OK", "BAD", "AFTER"]    # AFTER never ran: a row, no bar
    axis = [t.text for t in svg.iter(f"{SVG}text") if t.get("text-anchor") == "middle"]
    assert axis[0] == "0s" and len(axis) >= 3


def test_json_and_junit_reports_parse(finished_run) -> None:
    repo, doc = finished_run
    report = json.loads(runner_cli("report", doc["run_id"], "--repo", str(repo),
                                   "--format", "json").stdout)
    assert report["exit_code"] == 1 and report["state"] == "finished"
    assert report["throughput"]["wall_seconds"] > 0
    assert report["tiers"]["simple"]["integrated"] == 1
    junit = ET.fromstring(runner_cli("report", doc["run_id"], "--repo", str(repo),
                                     "--format", "junit").stdout)
    cases = {c.get("name"): c for c in junit.iter("testcase")}
    assert list(cases) == ["isolation self-test", "OK", "BAD", "AFTER"]
    assert cases["OK"].find("failure") is None
    assert cases["BAD"].find("failure").get("message") == "run exited with 3"
    assert cases["AFTER"].find("skipped") is not None


def test_status_and_stats(finished_run) -> None:
    repo, doc = finished_run
    runs = runner_cli("status", "--repo", str(repo)).stdout
    assert doc["run_id"] in runs and "finished" in runs and "1/3" in runs
    tickets = runner_cli("status", doc["run_id"], "--repo", str(repo)).stdout
    assert "run exited with 3" in tickets and "skipped" in tickets
    stats = runner_cli("stats", "--repo", str(repo)).stdout
    assert "simple" in stats and "100%" in stats and "nuanced" in stats and "0%" in stats
    missing = runner_cli("status", "nope", "--repo", str(repo))
    assert missing.returncode == 2 and "no run 'nope'" in missing.stderr
