"""Random and mutated phase files never give anything but a phase or one InputError line,
and never take more than a few seconds (hypothesis; the loader in-process, real files).

What the CLI makes of these outcomes (exit 0 or 2, one stderr line) is test_hostile_cli's.
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.cli.demo import phase_text
from runner.errors import InputError
from runner.phase.load import load_phase
from runner.phase.model import Phase
from runner.phase.overrides import SETTINGS, apply_overrides

SECONDS = 3.0     # per example, with room for a slow, shared machine
PROPERTY = settings(deadline=SECONDS * 1000, max_examples=60, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

RICH = """\
name: p
base: main
target: runner/p
image: runner-worker:latest
concurrency: 2
network: none
resources: {cpus: 1.5, memory: 512m, pids: 256}
models: {simple: m1, nuanced: m2, complex: m3}
checks: ["make test"]
budget: {usd: 5}
review: {tier: complex}
author: {name: Bot, email: bot@example.com}
protected: [".github/**", gradlew]
max_file_size: 10m
max_reruns: 1
prices: {m1: {input: 3, output: 15, cache_write: 3.75, cache_read: 0.3}}
tickets:
  - &t {id: A, title: First, tier: simple, agent: script, run: "echo a", paths: ["src/**"],
        checks: [make], max_fix_loops: 1, timeout: 60, retries: 1}
  - {<<: *t, id: B, depends_on: [A], max_reruns: 2}
  - id: C
    prompt: |
      Do the thing.
    model: m9
    max_turns: 10
    max_tokens: 10000
"""
SEEDS = [RICH, phase_text("script"), phase_text("anthropic")]
KEYS = sorted(set(Phase.model_fields) | {"cpus", "memory", "pids", "id", "run", "agent",
                                          "prompt", "timeout", "usd", "<<"})


def outcome(path: Path, env: dict[str, str] | None = None) -> tuple[int, str]:
    """What `runner run PATH` decides before it touches git or Docker: 0 and the phase
    (which must survive the round trip a run's copy of it takes), or 2 and the one line."""
    started = time.monotonic()
    try:
        phase = apply_overrides(load_phase(path), flags={}, env=env or {})
    except InputError as e:
        code, message = e.exit_code, str(e)
        assert code == 2 and message and len(message.splitlines()) == 1, message
        assert len(message) < 2000, message[:200]
    else:
        code, message = 0, ""
        copy = path.with_name("copy.yaml")    # what resume reads back (run.PHASE_COPY)
        copy.write_text(yaml.safe_dump(phase.model_dump(mode="json"), sort_keys=False))
        assert load_phase(copy) == phase
    assert time.monotonic() - started < SECONDS
    return code, message


def _check(data: bytes, env: dict[str, str] | None = None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "phase.yaml"
        path.write_bytes(data)
        outcome(path, env)


# Values a phase file may hold, and those near the edges of what a field takes.
_numbers = st.one_of(st.integers(), st.integers(-3, 3), st.sampled_from(
    [0, 1, 16, 1000, 2**31, 2**63, 10**30]), st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, 1e-10, 0.01, 1024.0, math.inf, -math.inf, math.nan, 1e308]))
_strings = st.one_of(st.text(max_size=30), st.sampled_from(
    ["", "0", "6m", "2g", "9" * 40 + "g", "../x", "a\nb", "a\u2028b", "x.lock", "_x",
     "runner-worker:latest", "UPPER:x", "none", "bridge", "script", "command", "simple",
     "src/[abc", "/etc/**", ".github/**", "A", "B", "main", "HEAD"]))
_scalars = st.one_of(st.none(), st.booleans(), _numbers, _strings)
_values = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8),
                                                 inner, max_size=5)), max_leaves=30)


def _mostly(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``valid`` nine times in ten, anything else the tenth: most documents get past the
    first field, to the limits and the checks behind it."""
    return st.integers(0, 9).flatmap(lambda n: _values if n == 0 else valid)


# Numbers a limit takes, some at its very edge.
_fair = st.sampled_from([1, 2, 16, 100, 1000, 0.01, 1.5, 60, 604800, 10000, 10**9])


_ids = st.sampled_from(["A", "B", "C"])
_globs = st.lists(st.sampled_from(["src/**", "*.md", "docs", "a/[bc]/*", "src/[abc", "/etc",
                                   "../x", ""]) | st.text(max_size=12), max_size=3)
_ticket = st.fixed_dictionaries(
    {"id": _mostly(_ids), "agent": _mostly(st.just("script")),
     "run": _mostly(st.text(min_size=1, max_size=20))},
    optional={"timeout": _mostly(_fair | _numbers),
              "depends_on": _mostly(st.lists(_ids, max_size=2)),
              "paths": _mostly(_globs), "max_turns": _mostly(_fair | _numbers),
              "max_tokens": _mostly(_fair | _numbers), "retries": _mostly(_fair | _numbers),
              "max_fix_loops": _mostly(_fair | _numbers), "max_reruns": _mostly(_fair | _numbers),
              "tier": _mostly(st.sampled_from(["simple", "nuanced", "complex"])),
              "checks": _mostly(st.lists(st.text(max_size=10), max_size=2)),
              "title": _strings, "env": _mostly(st.just([])),
              "prompt": _mostly(st.text(max_size=10))})
_size = st.sampled_from(["0", "5m", "6m", "512m", "2g", "1.5g", "0.001k", "9" * 30 + "g"])
_phase = st.fixed_dictionaries(
    {"name": _mostly(st.just("p")),
     "tickets": _mostly(st.lists(_ticket, min_size=1, max_size=4,
                                 unique_by=lambda t: str(t.get("id"))))},
    optional={"resources": _mostly(st.fixed_dictionaries({}, optional={
                  "cpus": _fair | _numbers, "memory": _mostly(_size),
                  "pids": _fair | _numbers})),
              "image": _mostly(st.sampled_from(["runner-worker:latest", "x/y:1", "UP", "a b",
                                                "r.example:5000/a@sha256:" + "0" * 64])),
              "concurrency": _mostly(_fair | _numbers), "network": _mostly(st.just("none")),
              "budget": _mostly(st.fixed_dictionaries({"usd": _fair | _numbers})),
              "prices": _mostly(st.dictionaries(st.text(max_size=5), st.fixed_dictionaries(
                  {"input": _fair | _numbers, "output": _fair | _numbers}), max_size=2)),
              "protected": _mostly(_globs), "max_file_size": _mostly(_size),
              "target": _mostly(st.sampled_from(["runner/p", "t"]) | _strings),
              "base": _mostly(st.just("main") | _strings),
              "checks": _mostly(st.lists(st.text(max_size=10), max_size=2)),
              "author": _mostly(st.fixed_dictionaries({"name": _strings, "email": _strings})),
              "models": _mostly(st.just({})), "max_reruns": _mostly(_fair | _numbers)})


@PROPERTY
@given(_phase)
def test_a_generated_phase_is_a_phase_or_one_line(document: dict[str, Any]) -> None:
    _check(yaml.safe_dump(document, allow_unicode=True).encode())


@PROPERTY
@given(_phase, st.dictionaries(st.sampled_from(sorted(SETTINGS.values())), _strings,
                               max_size=3))
def test_overrides_over_a_generated_phase_are_one_line(document: dict[str, Any],
                                                       env: dict[str, str]) -> None:
    env = {k: v for k, v in env.items() if v}   # an empty variable is an unset one
    _check(yaml.safe_dump(document).encode(), env)


def _mutate(data: bytes, draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["flip", "truncate", "duplicate", "nest", "insert", "swap"]))
    at = draw(st.integers(0, max(0, len(data) - 1)))
    if kind == "flip":
        return data[:at] + bytes([data[at] ^ (1 << draw(st.integers(0, 7)))]) + data[at + 1:]
    if kind == "truncate":
        return data[:at]
    lines = data.splitlines(keepends=True)
    line = draw(st.integers(0, len(lines) - 1))
    if kind == "duplicate":
        return b"".join(lines[:line + 1] + lines[line:])
    if kind == "nest":
        depth = draw(st.sampled_from([10, 31, 32, 33, 200, 20_000]))
        opener, closer = draw(st.sampled_from([(b"[", b"]"), (b"{a: ", b"}")]))
        return data[:at] + opener * depth + closer * draw(st.integers(0, depth)) + data[at:]
    if kind == "insert":
        return data[:at] + draw(st.binary(min_size=1, max_size=8)) + data[at:]
    other = draw(st.integers(0, len(lines) - 1))
    lines[line], lines[other] = lines[other], lines[line]
    return b"".join(lines)


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    data = draw(st.sampled_from(SEEDS)).encode()
    for _ in range(draw(st.integers(1, 4))):
        data = _mutate(data, draw) or b"\n"
    return data


@PROPERTY
@given(_mutated())
def test_a_mutated_phase_file_is_a_phase_or_one_line(data: bytes) -> None:
    _check(data)


@PROPERTY
@given(st.binary(max_size=2000) | st.text(max_size=500).map(str.encode))
def test_arbitrary_bytes_are_one_line(data: bytes) -> None:
    _check(data)


def test_the_seeds_themselves_are_phases(tmp_path: Path) -> None:
    for number, text in enumerate(SEEDS):
        path = tmp_path / f"seed{number}.yaml"
        path.write_text(text)
        assert outcome(path) == (0, "")
