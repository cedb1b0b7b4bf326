"""Which Claude Code binary a claude-code ticket runs, and its version (for `runner doctor`).

In order: the phase's `claude: {binary: PATH}`, else `claude` on the host's PATH, else the
one bundled in an installed `claude-agent-sdk` wheel. The binary is mounted read-only into
workers whose images have no node, so only a self-contained ELF build will do.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from runner.errors import EnvironmentProblem

if TYPE_CHECKING:
    from runner.phase import Phase

SDK = "claude-agent-sdk"
VERSION_TIMEOUT = 30.0
_ELF = b"\x7fELF"
_FIX = ("point claude.binary in the phase file at an ELF build such as the one in the "
        f"{SDK} wheel (pip install {SDK})")


@dataclass(frozen=True)
class ClaudeBinary:
    path: Path          # resolved: what is mounted is the file, not a symlink to it
    source: str         # where it was found, for messages and `runner doctor`


def binary_for(phase: Phase) -> ClaudeBinary:
    """The binary a phase's claude-code tickets use."""
    return find_binary(phase.claude.binary)


def find_binary(configured: Path | None = None, *, search_path: str | None = None
                ) -> ClaudeBinary:
    """The binary to use, checked; EnvironmentProblem saying what to do if there is none.
    ``search_path`` stands for $PATH (tests)."""
    if configured is not None:
        return _checked(Path(configured).expanduser(), "claude.binary in the phase file")
    on_path = shutil.which("claude", path=search_path)
    if on_path:
        return _checked(Path(on_path), "`claude` on PATH")
    bundled = bundled_binary()
    if bundled is not None:
        return _checked(bundled, f"bundled in the installed {SDK}")
    raise EnvironmentProblem(
        f"no Claude Code binary for claude-code tickets: set claude.binary in the phase file, "
        f"put `claude` on PATH, or pip install {SDK} (its wheel bundles one)")


def bundled_binary() -> Path | None:
    """Where an installed claude-agent-sdk keeps its binary, without importing it (slow)."""
    try:
        spec = importlib.util.find_spec("claude_agent_sdk")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    return Path(spec.origin).parent / "_bundled" / "claude"


def _checked(path: Path, source: str) -> ClaudeBinary:
    where = f"Claude Code binary {path} ({source})"
    try:
        resolved = path.resolve(strict=True)
        if not resolved.is_file() or not os.access(resolved, os.X_OK):
            raise EnvironmentProblem(f"{where} is not an executable file; {_FIX}")
        with resolved.open("rb") as f:
            magic = f.read(4)
    except FileNotFoundError:
        raise EnvironmentProblem(f"{where} does not exist; {_FIX}") from None
    except OSError as e:
        raise EnvironmentProblem(f"{where} cannot be read ({e.strerror}); {_FIX}") from e
    if magic != _ELF:
        raise EnvironmentProblem(
            f"{where} is not an ELF executable (a node script install?): the worker image "
            f"would then need node; {_FIX}")
    return ClaudeBinary(resolved, source)


def binary_version(binary: ClaudeBinary | Path, timeout: float = VERSION_TIMEOUT) -> str:
    """What `<binary> --version` prints, e.g. "2.1.332 (Claude Code)"."""
    path = binary.path if isinstance(binary, ClaudeBinary) else binary
    env = {**os.environ, "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"}
    try:
        done = subprocess.run([str(path), "--version"], capture_output=True, text=True,
                              timeout=timeout, env=env, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise EnvironmentProblem(f"Claude Code binary {path}: `--version` did not answer "
                                 f"in {timeout:g}s") from None
    except OSError as e:
        raise EnvironmentProblem(f"Claude Code binary {path} cannot run: {e.strerror}") from e
    lines = (done.stdout or done.stderr).strip().splitlines()
    if done.returncode != 0 or not lines:
        detail = lines[-1] if lines else f"exit {done.returncode}"
        raise EnvironmentProblem(f"Claude Code binary {path}: `--version` failed: "
                                 f"{detail[:200]}")
    return lines[0][:200]
