"""Agent kinds by registry: each kind says what it needs in runner/agents/kinds.py, and no
module outside runner/agents/ tests a kind's name (the phase loader, the run, the worker
and the doctor ask the registry), read from the code itself."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from runner.agents.kinds import KINDS, kinds_where
from runner.errors import PhaseFileError
from runner.phase.load import load_phase
from runner.phase.model import Phase
from tests.helpers import ROOT


def test_no_module_outside_the_agents_package_tests_a_kinds_name() -> None:
    found = []
    for path in (ROOT / "runner").rglob("*.py"):
        if "agents" in path.relative_to(ROOT).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                named = {c.value for part in (node.left, *node.comparators)
                         for c in ast.walk(part) if isinstance(c, ast.Constant)} & set(KINDS)
                if named:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {sorted(named)}")
    assert found == []


def test_each_kind_makes_its_agent_and_the_phase_schema_lists_them_all() -> None:
    for kind in KINDS.values():
        assert callable(kind.make().run), kind.name
    schema = json.dumps(Phase.model_json_schema())
    assert all(f'"{name}"' in schema for name in KINDS)


def test_the_phase_loader_asks_each_kind_what_a_ticket_must_give(tmp_path: Path) -> None:
    def load(ticket: dict) -> None:
        path = tmp_path / "phase.yaml"
        path.write_text(json.dumps({"name": "p", "tickets": [{"id": "A", **ticket}]}))
        load_phase(path)

    for name in kinds_where(works_from="run"):
        with pytest.raises(PhaseFileError, match=f"{name} ticket needs 'run'"):
            load({"agent": name, "prompt": "do it"})
    for name in kinds_where(works_from="prompt"):
        with pytest.raises(PhaseFileError, match=f"{name} ticket needs 'prompt'"):
            load({"agent": name, "run": "true"})
    for name in kinds_where(takes_env=False):
        given = {"run": "true"} if KINDS[name].works_from == "run" else {"prompt": "x"}
        with pytest.raises(PhaseFileError, match="may take host variables"):
            load({"agent": name, **given, "env": ["HOME"]})
    with pytest.raises(PhaseFileError, match="tickets\\[0\\].agent"):
        load({"agent": "codex", "prompt": "x"})
