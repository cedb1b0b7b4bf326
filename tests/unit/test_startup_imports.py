"""Commands import what they need when they run: the anthropic SDK (most of a second to import)
only when an anthropic agent or the review gate runs, docker-py only when a command talks to
the engine. Asserted on the modules a real `runner` process has loaded, never on time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT, make_repo

# The command's modules after main() returned (or argparse exited, for --version/--help).
PROBE = """
import json, sys
import runner.cli
try:
    code = runner.cli.main(sys.argv[1:])
except SystemExit as e:
    code = e.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def _loaded(*args: str, cwd: Path) -> set[str]:
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env["DOCKER_HOST"] = "unix:///nonexistent/docker.sock"   # a unit test leaves the engine be
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)
    last = proc.stdout.strip().splitlines()[-1]
    found = json.loads(last)
    assert found["code"] == 0, proc.stderr
    return set(found["modules"])


def _top(modules: set[str]) -> set[str]:
    return {m.split(".")[0] for m in modules}


@pytest.mark.parametrize("flag", ["--version", "--help"])
def test_version_and_help_import_nothing_of_the_run(tmp_path: Path, flag: str) -> None:
    modules = _loaded(flag, cwd=tmp_path)
    assert not {"anthropic", "docker", "pydantic", "yaml"} & _top(modules)
    ours = {m for m in modules if m.startswith("runner.")}
    cli = {f"runner.cli.{m}" for m in ("commands", "parser", "paths", "run_verbs",
                                       "setup_verbs", "ticket_verbs")}
    assert ours - cli <= {"runner.cli", "runner.errors", "runner.faces", "runner.records",
                          "runner.records.events", "runner.host", "runner.host.hostview",
                          "runner.views", "runner.views.tables", "runner.text"}, ours


def test_status_loads_no_schema_library_and_no_run_machinery(tmp_path: Path) -> None:
    """`runner status`, of a fresh repo and of one with a run recorded (its table, and the
    run's own), `logs`, `diff` and `show` of its ticket and the run's `report`: no SDK, no
    docker-py, no pydantic, YAML or tenacity, nothing that runs (the run's record keeps its
    tickets' order and what each was asked)."""
    from runner.records import TicketOutcome, TicketStatus
    from runner.records.record import Asked, RunResult, write_state

    repo = make_repo(tmp_path / "repo")
    heavy = {"anthropic", "docker", "pydantic", "yaml", "tenacity", "kubernetes", "aiohttp"}
    machinery = ("runner.run", "runner.worker", "runner.sandbox", "runner.gateway",
                 "runner.agents", "runner.phase.model", "runner.phase.load")
    run_dir = repo / ".git" / "runner" / "20260101-000000-abcd"
    run_dir.mkdir(parents=True)
    write_state(RunResult(run_id=run_dir.name, phase="p", base_sha="0" * 40, target="t",
                          run_dir=run_dir, started=1.0, ended=2.0, state="finished",
                          outcomes={"A": TicketOutcome("A", TicketStatus.INTEGRATED)},
                          tickets=["A"], asked={"A": Asked("a title", "script", "echo hi")}))
    (run_dir / "logs").mkdir()
    (run_dir / "logs" / "A.log").write_text("| hello\n")
    for args in (("status",), ("status", run_dir.name), ("logs", "A"), ("diff", "A"),
                 ("show", "A"), ("report",)):
        modules = _loaded(*args, cwd=repo)
        assert not heavy & _top(modules), (args, heavy & _top(modules))
        assert not [m for m in modules if m.startswith(machinery)], args


def test_dry_run_of_a_script_phase_does_not_import_the_sdk(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    phase = tmp_path / "p.yaml"
    phase.write_text("name: p\ntickets:\n  - {id: A, agent: script, run: 'true'}\n"
                     "  - {id: B, agent: script, run: 'true', depends_on: [A]}\n")
    assert "anthropic" not in _top(_loaded("run", str(phase), "--dry-run", cwd=repo))


def test_an_anthropic_phase_does_import_it_when_it_runs(tmp_path: Path) -> None:
    """The probe's counterpart: the SDK is loaded where it is needed (the agent factory)."""
    probe = ("import sys; from runner.agents import agent_for; "
             "from runner.phase.model import Ticket; "
             "agent_for(Ticket(id='S', agent='script', run='true')); "
             "print('anthropic' in sys.modules, end=' '); "
             "agent_for(Ticket(id='L', prompt='x')); print('anthropic' in sys.modules)")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                         text=True, timeout=120, check=True).stdout.split()
    assert out == ["False", "True"]
