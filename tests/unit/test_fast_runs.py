"""The fast tier: whole runs of the lead's own logic — scheduling by depends_on, collect,
the gates, integration, phase checks, the records and the views over them — on a test
double of an engine (tests/fakes/dir_sandbox.py: directories and subprocesses, isolating
nothing), with no engine at all. The real-engine tests prove isolation; these prove the
lead, in well under a second a run."""

from __future__ import annotations

import json
from pathlib import Path

from runner.phase.load import load_phase
from runner.records.events import EventCollector, TicketChanged
from runner.records.record import load_result
from runner.run.lead import run_phase
from runner.run.options import RunOptions
from runner.views.report import as_json, as_junit, as_markdown
from tests.fakes.dir_sandbox import DirBackend
from tests.helpers import git, make_repo, write_phase


def run(tmp_path: Path, tickets: list[dict], **phase: object) -> tuple[Path, object, object]:
    repo = make_repo(tmp_path / "repo", {"README.md": "a project\n"})
    phase_file = write_phase(tmp_path / "phase.yaml", {"name": "fast", "tickets": tickets,
                                                       **phase})
    loaded = load_phase(phase_file)
    options = RunOptions(repo=repo, phase_file=phase_file, preflight=False)
    sink = EventCollector()
    return repo, run_phase(loaded, options, sink, backend=DirBackend()), sink


def test_dependent_tickets_integrate_in_order_onto_the_target(tmp_path: Path) -> None:
    repo, result, sink = run(tmp_path, [
        {"id": "A", "agent": "script", "run": "echo a > a.txt"},
        {"id": "B", "agent": "script", "run": "test -f a.txt && echo b > b.txt",
         "depends_on": ["A"]},
        {"id": "C", "agent": "script", "run": "echo c > c.txt"}],
        checks=["test -f a.txt && test -f b.txt"])
    assert result.exit_code == 0, result.outcomes
    assert {t: o.status for t, o in result.outcomes.items()} == dict.fromkeys("ABC",
                                                                               "integrated")
    assert git(repo, "show", "runner/fast:b.txt") == "b"
    started = [e.ticket for e in sink.events
               if isinstance(e, TicketChanged) and e.status == "running"]
    assert started.index("A") < started.index("B")        # B starts from A's work
    again = load_result(result.run_dir)                     # the record, as the views read it
    assert again.checks_passed is True and set(again.outcomes) == {"A", "B", "C"}


def test_the_gates_and_checks_judge_each_ticket_and_the_views_tell_it(tmp_path: Path) -> None:
    repo, result, _ = run(tmp_path, [
        {"id": "OK", "agent": "script", "run": "echo ok > ok.txt", "paths": ["ok.txt"]},
        {"id": "OUT", "agent": "script", "run": "echo x > elsewhere.txt", "paths": ["ok2.txt"]},
        {"id": "CI", "agent": "script", "run": "mkdir -p .github && echo x > .github/ci.yml"},
        {"id": "RED", "agent": "script", "run": "echo r > r.txt", "checks": ["false"]}])
    status = {t: o.status for t, o in result.outcomes.items()}
    assert status == {"OK": "integrated", "OUT": "failed", "CI": "failed", "RED": "failed"}
    why = {t: o.reason for t, o in result.outcomes.items()}
    assert why["OUT"].startswith("changed files outside its paths: elsewhere.txt")
    assert why["CI"].startswith("changed files protected: .github/ci.yml")
    assert why["RED"] == "check `false` exited with 1" and result.exit_code != 0
    assert "ok.txt" in git(repo, "ls-tree", "--name-only", "runner/fast")
    assert ".github" not in git(repo, "ls-tree", "--name-only", "runner/fast")
    # What each ticket was asked is in the run's record: the views need no phase file.
    asked = load_result(result.run_dir).asked
    assert asked["OK"].asked == "echo ok > ok.txt" and asked["RED"].agent == "script"
    document = json.loads(as_json(result, asked))
    assert {t["id"]: t["status"] for t in document["tickets"]} == status
    assert as_junit(result).count("<failure") >= 3
    assert "OUT" in as_markdown(result, asked, "timeline.svg")


def test_tickets_at_once_each_integrate_once(tmp_path: Path) -> None:
    repo, result, _ = run(tmp_path, [{"id": f"T{i:02}", "agent": "script",
                                      "run": f"echo {i} > f{i}.txt"} for i in range(24)],
                          concurrency=8)
    assert result.exit_code == 0
    assert all(o.status == "integrated" for o in result.outcomes.values())
    assert len(git(repo, "log", "--format=%H", "main..runner/fast").splitlines()) == 24


def test_a_field_the_engine_cannot_honour_is_said_naming_it(tmp_path: Path) -> None:
    """resources.pids on Kubernetes: a Pod's spec has no bound for its processes."""
    from runner.run.preflight import unhonoured
    from runner.sandbox import resolve

    phase_file = write_phase(tmp_path / "phase.yaml", {
        "name": "p", "resources": {"pids": 100},
        "tickets": [{"id": "A", "agent": "script", "run": "true"}]})
    phase = load_phase(phase_file)
    said = unhonoured(phase, resolve("kubernetes"))
    assert len(said) == 1 and said[0].startswith("resources.pids has no effect on Kubernetes")
    assert unhonoured(phase, resolve("local")) == []
    unset = load_phase(write_phase(tmp_path / "q.yaml", {
        "name": "q", "tickets": [{"id": "A", "agent": "script", "run": "true"}]}))
    assert unhonoured(unset, resolve("kubernetes")) == []      # the default is not the user's
    # Said as a run on that engine checks its inputs, before anything starts.
    from runner.host import open_host_repo
    from runner.run.preflight import check_inputs

    told = EventCollector()
    check_inputs(phase, RunOptions(repo=make_repo(tmp_path / "repo"), phase_file=phase_file),
                 open_host_repo(tmp_path / "repo"), told, resolve("kubernetes"))
    assert [e.message for e in told.events] == said
    # Nothing said where the engine honours it (the test double is this machine's).
    _, result, sink = run(tmp_path / "run", [{"id": "A", "agent": "script",
                                              "run": "echo a > a.txt"}],
                          resources={"pids": 100})
    assert not any("resources.pids" in getattr(e, "message", "") for e in sink.events)
    assert result.exit_code == 0


def test_a_concurrency_the_engine_cannot_hold_is_said_and_done_as_asked(tmp_path: Path) -> None:
    from runner.records import Notice
    from runner.run.preflight import crowding
    from runner.sandbox import Capacity

    repo = make_repo(tmp_path / "repo", {"README.md": "x\n"})
    phase_file = write_phase(tmp_path / "phase.yaml", {
        "name": "crowd", "concurrency": 3, "resources": {"cpus": 1, "memory": "1g"},
        "tickets": [{"id": f"T{i}", "agent": "script", "run": f"echo {i} > {i}.txt"}
                    for i in range(3)]})
    phase = load_phase(phase_file)
    two_cores = Capacity(machines=((2, 8 << 30),))
    said = crowding(phase, 3, two_cores)
    assert said is not None and said.startswith("concurrency 3 asks for more than the engine")
    assert "3 CPUs" in said and "2 CPUs" in said and "2 fit at once (concurrency: 2)" in said
    assert crowding(phase, 2, two_cores) is None and crowding(phase, 3, None) is None
    assert "1 fit at once" in (crowding(phase, 3, Capacity(machines=((64, 1 << 30),)))
                               or "")                                # memory bounds it too
    backend = DirBackend()
    backend.held = two_cores
    sink = EventCollector()
    result = run_phase(phase, RunOptions(repo=repo, phase_file=phase_file, preflight=False),
                       sink, backend=backend)
    warned = [e.message for e in sink.events if isinstance(e, Notice) and e.level == "warning"]
    assert said in warned and result.exit_code == 0       # said, then run as asked


def test_with_no_concurrency_the_engine_sizes_it(tmp_path: Path) -> None:
    """As many at once as fit (each machine holding whole workers), said when fewer than
    the tickets; an engine that does not tell: 4; a worker no machine holds: said."""
    from runner.records import Notice
    from runner.run.preflight import crowding, default_concurrency
    from runner.sandbox import Capacity

    phase_file = write_phase(tmp_path / "phase.yaml", {
        "name": "sized", "resources": {"cpus": 1.5, "memory": "3g"},
        "tickets": [{"id": f"T{i}", "agent": "script", "run": f"echo {i} > {i}.txt"}
                    for i in range(5)]})
    phase = load_phase(phase_file)
    nodes = Capacity(machines=((2, 8 << 30), (4, 16 << 30)))    # 1 + 2 whole workers
    assert nodes.fits(1.5, 3 << 30) == 3 and Capacity(machines=((2, 8 << 30),)).fits(0.2, 1) == 10
    workers, why = default_concurrency(phase, nodes)
    assert workers == 3 and why.startswith("3 tickets at once: what the engine holds (its 2 "
                                           "nodes have 6 CPUs and 24.0 GiB between them)")
    assert default_concurrency(phase, None) == (4, "")
    assert default_concurrency(phase, Capacity(machines=((64, 64 << 30),))) == (5, "")
    tiny = Capacity(machines=((1, 8 << 30),))
    assert default_concurrency(phase, tiny)[0] == 1
    assert (crowding(phase, 1, tiny) or "").startswith("no worker fits the engine")
    backend = DirBackend()
    backend.held = Capacity(machines=((2, 8 << 30),))
    sink = EventCollector()
    result = run_phase(phase, RunOptions(repo=make_repo(tmp_path / "repo"),
                                         phase_file=phase_file, preflight=False),
                       sink, backend=backend)
    said = [e.message for e in sink.events if isinstance(e, Notice)]
    assert any(m.startswith("1 ticket at once: what the engine holds (it has 2 CPUs")
               for m in said), said
    assert result.exit_code == 0
