"""resources.disk in the phase file: a size, a sensible default, refused when it cannot work."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.errors import PhaseFileError
from runner.phase.load import load_phase
from tests.helpers import runner_cli

TICKETS = "tickets:\n  - {id: A, agent: script, run: 'true'}\n"


def _phase(tmp_path: Path, resources: str) -> Path:
    path = tmp_path / "phase.yaml"
    path.write_text(f"name: p\n{resources}{TICKETS}")
    return path


def test_the_default_is_ten_gibibytes(tmp_path: Path) -> None:
    assert load_phase(_phase(tmp_path, "")).resources.disk_bytes == 10 << 30


@pytest.mark.parametrize("disk, size", [("64m", 64 << 20), ("1.5g", 3 << 29),
                                         ("2G", 2 << 30), ("70000k", 70000 << 10)])
def test_a_size_like_memory(tmp_path: Path, disk: str, size: int) -> None:
    phase = load_phase(_phase(tmp_path, f"resources: {{disk: {disk}}}\n"))
    assert phase.resources.disk_bytes == size


@pytest.mark.parametrize("disk, said", [
    ("'0'", "'0' is below the smallest disk budget, 64m"),
    ("63m", "'63m' is below the smallest disk budget, 64m"),
    ("lots", "'lots' is not a size"),
    ("-1g", "'-1g' is not a size"),
    ("2000000g", "'2000000g' is larger than any disk"),
    ("'" + "9" * 400 + "g'", "'" + "9" * 59 + "… is larger than any disk"),
])
def test_a_budget_that_cannot_work_is_refused(tmp_path: Path, disk: str, said: str) -> None:
    with pytest.raises(PhaseFileError) as e:
        load_phase(_phase(tmp_path, f"resources: {{disk: {disk}}}\n"))
    assert "resources.disk" in str(e.value) and said in str(e.value), str(e.value)


def test_the_cli_refuses_it_with_exit_2_and_one_line(tmp_path: Path) -> None:
    phase = _phase(tmp_path, "resources: {disk: 0m}\n")
    proc = runner_cli("run", str(phase), "--repo", str(tmp_path))
    assert proc.returncode == 2, proc.stderr
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith(f"runner: error: {phase}: resources.disk: '0m' is below the "
                           "smallest disk budget")
