"""Which run and ticket a person means (`latest`, a prefix), and shell completion of them:
over runs recorded as a run records itself (run.json and its phase copy)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from runner.errors import InputError
from runner.records.events import TicketStatus
from runner.records.outcome import TicketOutcome
from runner.records.record import PHASE_COPY, RunResult, write_state
from runner.views.picking import pick, pick_run
from tests.helpers import ROOT, make_repo, runner_cli

TICKETS = ["R08", "R09", "R10", "BUILD"]


def _record(state: Path, run_id: str, started: float) -> RunResult:
    run_dir = state / run_id
    run_dir.mkdir(parents=True)
    (run_dir / PHASE_COPY).write_text(yaml.safe_dump({"name": "p", "tickets": [
        {"id": t, "agent": "script", "run": "true"} for t in TICKETS]}))
    result = RunResult(run_id=run_id, phase="p", base_sha="0" * 40, target="runner/p",
                       run_dir=run_dir, started=started, state="finished",
                       outcomes={"R08": TicketOutcome("R08", TicketStatus.INTEGRATED)})
    write_state(result)
    return result


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = make_repo(tmp_path / "repo")
    state = repo / ".git" / "runner"
    _record(state, "20260101-000000-aaaa", 1.0)
    _record(state, "20260102-000000-bbbb", 2.0)
    return repo


def test_latest_or_nothing_is_the_newest_run(repo: Path) -> None:
    state = repo / ".git" / "runner"
    assert pick_run(state, None).run_id == pick_run(state, "latest").run_id == \
        "20260102-000000-bbbb"
    assert pick_run(state, "20260101-000000-aaaa").run_id == "20260101-000000-aaaa"
    with pytest.raises(InputError, match="runs there: 20260101-000000-aaaa, "
                                         "20260102-000000-bbbb"):
        pick_run(state, "20990101-000000-zzzz")
    with pytest.raises(InputError, match="no runs under"):
        pick_run(repo / "elsewhere", None)


def test_a_ticket_by_its_id_or_a_prefix_only_it_has(repo: Path) -> None:
    state = repo / ".git" / "runner"
    assert pick(state, None, "B").ticket == "BUILD"
    assert pick(state, None, "R08").ticket == "R08"
    with pytest.raises(InputError, match="could be any of R08, R09, R10"):
        pick(state, None, "R")
    with pytest.raises(InputError, match="has no ticket 'X'"):
        pick(state, None, "X")
    with pytest.raises(InputError, match="has not ended yet"):
        pick(state, None, "R09").outcome


def test_completion_offers_commands_runs_and_tickets(repo: Path) -> None:
    def offered(*words: str) -> list[str]:
        proc = runner_cli("_complete", *words, cwd=repo)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.split()

    assert {"run", "diff", "show", "apply", "shell", "init"} <= set(offered(""))
    assert "_complete" not in offered("")
    after_diff = offered("diff", "")
    assert after_diff[:3] == ["latest", "20260102-000000-bbbb", "20260101-000000-aaaa"]
    assert set(TICKETS) <= set(after_diff) and "--stat" in after_diff
    assert set(TICKETS) <= set(offered("diff", "20260101-000000-aaaa", ""))
    assert "latest" in offered("status", "")
    assert "--onto" in offered("apply", "R08", "")


# What each shell's completion system would do with the function: bash's reads COMPREPLY;
# zsh's compadd is stood in for by one that prints what matches the word being typed.
_ASK = {"bash": "COMP_WORDS=(runner show 2026010); COMP_CWORD=2\n_runner_complete\n"
                "printf '%s\\n' \"${COMPREPLY[@]}\"\n",
        "zsh": "words=(runner show 2026010); CURRENT=3\n_runner_complete\n"}
_BEFORE = {"bash": "", "zsh": "compdef() { :; }\ncompadd() { local a; for a in \"${(@P)2}\"; "
                               "do [[ $a == ${words[CURRENT]}* ]] && print -r -- $a; done; }\n"}


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_the_scripts_complete_in_a_real_shell(repo: Path, shell: str) -> None:
    assert shutil.which(shell), f"{shell} is missing: ./setup.sh --dev installs Debian's"
    script = runner_cli("completion", shell).stdout
    # `runner` itself, as this checkout's: a function the script's call finds first.
    runner = f'runner() {{ PYTHONPATH={ROOT} {sys.executable} -m runner "$@"; }}'
    probe = f"{runner}\n{_BEFORE[shell]}{script}\n{_ASK[shell]}"
    proc = subprocess.run([shell, "-c", probe], cwd=repo, capture_output=True, text=True,
                          env=dict(os.environ))
    assert proc.stdout.split() == ["20260102-000000-bbbb", "20260101-000000-aaaa"], \
        proc.stderr
