from __future__ import annotations

from pathlib import Path

from runner.phase.load import find_cycle, load_phase
from runner.phase.model import DEFAULT_MODELS


def test_defaults(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("name: phase-2\ntickets:\n" + "".join(
        f"  - {{id: T{i}, agent: script, run: 'true'}}\n" for i in range(6)))
    phase = load_phase(path)
    assert phase.base == "HEAD"
    assert phase.target_branch == "runner/phase-2"
    assert phase.concurrency is None     # sized to the engine (run/preflight.py)
    assert phase.network == "none"
    assert phase.image == "runner-worker:latest"
    assert (phase.resources.cpus, phase.resources.memory, phase.resources.pids) == (1, "2g", 512)
    ticket = phase.tickets[0]
    assert (ticket.tier, ticket.max_fix_loops, ticket.timeout) == ("nuanced", 2, 1800)
    assert ticket.display_title == "T0"
    assert phase.models.simple == DEFAULT_MODELS["simple"]
    assert phase.author is None


def test_full_schema_loads(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("""
name: phase-2
base: main
target: runner/phase-2
image: runner-worker:latest
concurrency: 3
network: bridge
resources: {cpus: 1.5, memory: 512m, pids: 256}
models: {simple: a, nuanced: b, complex: c}
gradle: {shared_cache: /tmp}
checks: ["./gradlew test"]
author: {name: "Phase Two Bot", email: bot@example.invalid}
tickets:
  - id: R08
    title: Deprecation additions
    tier: simple
    agent: script
    run: "true"
    paths: ["app/src/**"]
    checks: ["true"]
    max_fix_loops: 1
    timeout: 60
  - {id: R09, agent: script, run: "true", depends_on: [R08]}
""")
    phase = load_phase(path)
    assert phase.concurrency == 3
    assert phase.ticket("R09").depends_on == ["R08"]
    assert str(phase.gradle.shared_cache) == "/tmp"
    assert phase.author is not None
    assert (phase.author.name, phase.author.email) == ("Phase Two Bot", "bot@example.invalid")


def test_find_cycle() -> None:
    assert find_cycle({"a": ["b"], "b": []}) is None
    assert find_cycle({"a": ["b"], "b": ["c"], "c": ["a"]}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": [], "b": ["b"]}) == ["b", "b"]
