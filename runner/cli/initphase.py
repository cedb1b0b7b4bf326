"""`runner init`: a commented phase file for the repo it is run in, to edit rather than to
write from nothing: base is the branch checked out, the image one this machine has (the
Gradle one for a Gradle build), and N tickets that show the kinds of agent."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import yaml

from runner.errors import InputError
from runner.host import HostRepo, git
from runner.phase import NAME_PATTERN

WORKER, JVM_WORKER = "runner-worker:latest", "runner-worker-jvm:latest"
_GRADLE_FILES = ("build.gradle", "build.gradle.kts", "settings.gradle", "settings.gradle.kts",
                 "gradlew")


def current_branch(host: HostRepo) -> str:
    proc = git(host.top, "symbolic-ref", "--quiet", "--short", "HEAD", check=False)
    return proc.stdout.strip() or "HEAD"


def pick_image(top: Path, has_image: Callable[[str], bool]) -> str:
    """The Gradle worker for a Gradle build when it is here (or buildable: runner builds its
    own images), else the plain one."""
    gradle = any((top / name).exists() for name in _GRADLE_FILES)
    if gradle and (has_image(JVM_WORKER) or not has_image(WORKER)):
        return JVM_WORKER
    return WORKER


def phase_name(top: Path) -> str:
    """The repo's directory name as a phase name (what a name may not hold, as '-')."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", top.name).strip(".-")
    return name if name and re.fullmatch(NAME_PATTERN, name) else "phase-1"


def phase_text(*, name: str, base: str, image: str, tickets: int) -> str:
    if not re.fullmatch(NAME_PATTERN, name):
        raise InputError(f"--name {name!r} is not a phase name (letters, digits, '.', '_', "
                         "'-')")
    lines = [
        "# A phase: tickets that runner runs at once, each in its own container over its own",
        "# clone; their commits are integrated onto `target`. `runner run --dry-run` shows the",
        "# plan; `runner schema` prints the JSON Schema an editor can check this file with.",
        _line(f"name: {_scalar(name)}"),
        _line(f"base: {_scalar(base)}", "where every ticket starts (a branch, tag or commit)"),
        _line(f"# target: runner/{name}", "the branch that receives the result (the default)"),
        _line(f"image: {image}"),
        _line("# concurrency: 4", "workers at once (default: min(4, tickets))"),
        _line('# checks: ["make test"]', "the phase gate, on the integrated result"),
        _line("# budget: {usd: 5}", "LLM spend at which workers stop"),
        _line("# egress: [maven.corp.example]", "hosts workers may reach (the gateway)"),
        "tickets:",
    ]
    for number in range(1, tickets + 1):
        lines += _ticket(number)
    return "\n".join(lines) + "\n"


def _scalar(value: str) -> str:
    """``value`` as YAML reads it back, a string: plain when it can be (not 2024, 1.0, yes),
    else quoted."""
    plain = re.fullmatch(r"[A-Za-z0-9._/-]+", value) and yaml.safe_load(value) == value
    return value if plain else json.dumps(value)


def _line(text: str, comment: str = "") -> str:
    return f"{text:<34}# {comment}" if comment else text


def _ticket(number: int) -> list[str]:
    ticket = f"T{number}"
    head = [f"  - id: {ticket}", f"    title: what {ticket} is to do"]
    if number % 2:     # the kinds in turn: an LLM agent, then a script
        return head + [
            _line("    agent: claude-code", "Claude Code, headless; needs ANTHROPIC_API_KEY"),
            _line("    tier: simple", "simple | nuanced | complex: which model"),
            f"    prompt: \"Describe {ticket}'s change here\"",
            _line('    # paths: ["src/**"]', "the files it may change (default: all)"),
            _line('    # checks: ["make test"]', "its gate in its container; failures go "
                                                 "back to it"),
        ]
    return head + [
        _line("    agent: script", "a bash script in /workspace; no API key needed"),
        f"    run: echo \"{ticket} was here\" > {ticket}.txt",
        _line("    # depends_on: [T1]", "starts once T1 is integrated, from the result"),
    ]
