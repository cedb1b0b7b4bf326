"""Which Claude Code binary a run uses: ELF only, from the phase, PATH or the SDK wheel."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from runner.agents.claude_binary import binary_for, binary_version, bundled_binary, find_binary
from runner.errors import EnvironmentProblem

TRUE = Path(shutil.which("true") or "/bin/true")


def node_script(where: Path) -> Path:
    script = where / "claude"
    script.write_text("#!/usr/bin/env node\nconsole.log('hi')\n")
    script.chmod(0o755)
    return script


def test_an_elf_file_is_taken_and_resolved(tmp_path: Path) -> None:
    link = tmp_path / "claude"
    link.symlink_to(TRUE)
    found = find_binary(link)
    assert found.path == TRUE.resolve() and "phase file" in found.source


def test_a_node_script_is_refused_saying_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(EnvironmentProblem) as refused:
        find_binary(node_script(tmp_path))
    message = str(refused.value)
    assert "not an ELF executable" in message and "need node" in message
    assert "claude.binary" in message and "pip install claude-agent-sdk" in message
    assert "\n" not in message


def test_missing_and_not_executable_are_refused(tmp_path: Path) -> None:
    with pytest.raises(EnvironmentProblem, match="does not exist"):
        find_binary(tmp_path / "nope")
    copy = tmp_path / "claude"
    shutil.copy(TRUE, copy)
    copy.chmod(0o644)
    with pytest.raises(EnvironmentProblem, match="not an executable file"):
        find_binary(copy)
    with pytest.raises(EnvironmentProblem, match="not an executable file"):
        find_binary(tmp_path)


def test_claude_on_path_comes_before_the_bundled_one(tmp_path: Path) -> None:
    (tmp_path / "claude").symlink_to(TRUE)
    found = find_binary(search_path=str(tmp_path))
    assert found.path == TRUE.resolve() and found.source == "`claude` on PATH"
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    node_script(scripts)
    with pytest.raises(EnvironmentProblem, match="on PATH.*not an ELF"):
        find_binary(search_path=str(scripts))


def test_the_phase_field_comes_first(tmp_path: Path) -> None:
    phase = SimpleNamespace(claude=SimpleNamespace(binary=TRUE))
    assert binary_for(phase).path == TRUE.resolve()


def test_without_path_the_sdk_wheel_is_used_or_named(tmp_path: Path) -> None:
    bundled = bundled_binary()
    if bundled is None or not bundled.exists():
        with pytest.raises(EnvironmentProblem, match="pip install claude-agent-sdk"):
            find_binary(search_path=str(tmp_path))
        return
    found = find_binary(search_path=str(tmp_path))
    assert found.path == bundled.resolve() and "claude-agent-sdk" in found.source


def test_version_runs_the_binary() -> None:
    assert binary_version(TRUE)          # GNU true answers --version
    bundled = bundled_binary()
    if bundled is None or not bundled.exists():
        pytest.skip("claude-agent-sdk is not installed (./setup.sh --dev installs it)")
    assert "Claude Code" in binary_version(find_binary(bundled))


def test_version_failing_is_one_line(tmp_path: Path) -> None:
    broken = tmp_path / "claude"
    broken.write_text("#!/bin/sh\necho 'boom' >&2\nexit 3\n")
    broken.chmod(0o755)
    with pytest.raises(EnvironmentProblem, match="--version` failed: boom"):
        binary_version(broken)
