"""Bad phase files: exit 2, one line on stderr naming the field (and ticket), no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import runner_cli

GOOD_TICKET = "  - {id: A, agent: script, run: 'true'}\n"
CASES = {
    "unknown top-level key": ("name: p\ncolour: red\ntickets:\n" + GOOD_TICKET, ["colour",
                              "unknown key"]),
    "unknown ticket key": ("name: p\ntickets:\n  - {id: A, agent: script, run: x, colour: 1}\n",
                           ["tickets[0].colour", "ticket A", "unknown key"]),
    "missing ticket id": ("name: p\ntickets:\n  - {agent: script, run: x}\n",
                          ["tickets[0].id", "required"]),
    "duplicate ids": ("name: p\ntickets:\n" + GOOD_TICKET * 2,
                      ["tickets[1].id", "ticket A", "duplicate"]),
    "id escaping the ref space": ("name: p\ntickets:\n  - {id: ../x, agent: script, run: x}\n",
                                  ["tickets[0].id", "'../x'", "letters, digits"]),
    "unknown dependency": ("name: p\ntickets:\n  - {id: A, agent: script, run: x, "
                           "depends_on: [Z]}\n", ["tickets[0].depends_on", "ticket A", "'Z'"]),
    "dependency cycle": ("name: p\ntickets:\n  - {id: A, agent: script, run: x, depends_on: [B]}"
                         "\n  - {id: B, agent: script, run: x, depends_on: [A]}\n",
                         ["depends_on", "cycle", "A -> B -> A"]),
    "self dependency": ("name: p\ntickets:\n  - {id: A, agent: script, run: x, "
                        "depends_on: [A]}\n", ["tickets[0].depends_on", "cycle"]),
    "script without run": ("name: p\ntickets:\n  - {id: A, agent: script}\n",
                           ["tickets[0].run", "ticket A", "needs 'run'"]),
    "bad network": ("name: p\nnetwork: host\ntickets:\n" + GOOD_TICKET,
                    ["network", "'none' or 'bridge'"]),
    "bad yaml": ("name: p\ntickets: [\n", ["not valid YAML", "line"]),
    "anthropic without prompt": ("name: p\ntickets:\n  - {id: A}\n",
                                 ["tickets[0].prompt", "ticket A", "needs 'prompt'"]),
    "claude-code without prompt": ("name: p\ntickets:\n  - {id: A, agent: claude-code}\n",
                                   ["tickets[0].prompt", "ticket A", "needs 'prompt'"]),
    "claude-code with run": ("name: p\ntickets:\n  - {id: A, agent: claude-code, prompt: x, "
                             "run: y}\n", ["tickets[0].run", "takes 'prompt', not 'run'"]),
    "env on a script ticket": ("name: p\ntickets:\n  - {id: A, agent: script, run: x, "
                               "env: [HOME]}\n", ["tickets[0].env", "only command tickets"]),
    "bad budget": ("name: p\nbudget: {usd: 0}\ntickets:\n" + GOOD_TICKET,
                   ["budget.usd", "greater than 0"]),
    "bad price": ("name: p\nprices: {m: {input: 1}}\ntickets:\n" + GOOD_TICKET,
                  ["prices.m.output", "required"]),
    "missing name": ("tickets:\n" + GOOD_TICKET, ["name", "required"]),
    "no tickets": ("name: p\ntickets: []\n", ["tickets", "at least 1"]),
    "bad phase name": ("name: a b\ntickets:\n" + GOOD_TICKET, ["name", "'a b'"]),
    "zero concurrency": ("name: p\nconcurrency: 0\ntickets:\n" + GOOD_TICKET,
                         ["concurrency", "greater than or equal to 1"]),
    "bad tier": ("name: p\ntickets:\n  - {id: A, agent: script, run: x, tier: huge}\n",
                 ["tickets[0].tier", "ticket A"]),
    "bad target branch": ("name: p\ntarget: 'a..b'\ntickets:\n" + GOOD_TICKET,
                          ["target", "not a valid branch name"]),
    "bad memory size": ("name: p\nresources: {memory: lots}\ntickets:\n" + GOOD_TICKET,
                        ["resources.memory", "'lots' is not a size"]),
    "not a mapping": ("- just\n- a list\n", ["must be a YAML mapping"]),
    "reserved id": ("name: p\ntickets:\n  - {id: _checks, agent: script, run: x}\n",
                    ["tickets[0].id", "reserved"]),
    "id colliding with a run ref": ("name: p\ntickets:\n  - {id: candidate, agent: script, "
                                    "run: x}\n", ["tickets[0].id", "reserved"]),
    "id colliding with the run's base ref": ("name: p\ntickets:\n  - {id: base, agent: "
                                             "script, run: x}\n", ["tickets[0].id", "reserved"]),
    "id git refuses": ("name: p\ntickets:\n  - {id: x.lock, agent: script, run: x}\n",
                       ["tickets[0].id", "'.lock'"]),
    "author without email": ("name: p\nauthor: {name: Bot}\ntickets:\n" + GOOD_TICKET,
                             ["author.email", "required"]),
    "author with an unknown key": ("name: p\nauthor: {name: B, email: b@x, url: u}\n"
                                   "tickets:\n" + GOOD_TICKET, ["author.url", "unknown key"]),
    "author email in brackets": ("name: p\nauthor: {name: B, email: '<b@x>'}\ntickets:\n"
                                 + GOOD_TICKET, ["author.email", "may not contain '<'"]),
    "author name with a newline": ('name: p\nauthor: {name: "B\\nC", email: b@x}\n'
                                   "tickets:\n" + GOOD_TICKET, ["author.name", "newline"]),
    "empty author name": ("name: p\nauthor: {name: ' ', email: b@x}\ntickets:\n"
                          + GOOD_TICKET, ["author.name", "must not be empty"]),
    "author name not a string": ("name: p\nauthor: {name: 12, email: b@x}\ntickets:\n"
                                 + GOOD_TICKET, ["author.name", "string"]),
    "dot-dot id": ("name: p\ntickets:\n  - {id: '..', agent: script, run: x}\n",
                   ["tickets[0].id", "'..'"]),
    "unclosed class in paths": ("name: p\ntickets:\n  - {id: T1, agent: script, run: x, "
                                "paths: ['src/**', 'src/[abc']}\n",
                                ["tickets[0].paths[1] (ticket T1)", "'src/[abc'", "'[[]'"]),
    "absolute path in paths": ("name: p\ntickets:\n  - {id: T1, agent: script, run: x, "
                               "paths: ['/etc/**']}\n",
                               ["tickets[0].paths[0] (ticket T1)", "absolute", "'etc/**'"]),
    "dot-dot in paths": ("name: p\ntickets:\n  - {id: T1, agent: script, run: x, "
                         "paths: ['../x']}\n", ["tickets[0].paths[0] (ticket T1)", "'..'"]),
    "empty pattern in paths": ("name: p\ntickets:\n  - {id: T1, agent: script, run: x, "
                               "paths: ['']}\n", ["tickets[0].paths[0]", "empty pattern"]),
    "bad protected pattern": ("name: p\nprotected: ['.github/**', '/gradlew']\ntickets:\n"
                              + GOOD_TICKET, ["protected[1]:", "absolute"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_phase_file_is_one_clear_line(case: str, tmp_path: Path) -> None:
    text, expected = CASES[case]
    phase = tmp_path / "phase.yaml"
    phase.write_text(text)
    proc = runner_cli("run", str(phase), "--repo", str(tmp_path))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert str(phase) in lines[0]
    for fragment in expected:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"


def test_dry_run_refuses_a_bad_path(tmp_path: Path) -> None:
    """Found when the file is read, not when the ticket's gate runs."""
    phase = tmp_path / "phase.yaml"
    phase.write_text("name: p\ntickets:\n  - {id: T1, agent: script, run: x, "
                     "paths: ['src/**', 'src/[abc', '/etc/**', '../x']}\n")
    proc = runner_cli("run", str(phase), "--dry-run", "--repo", str(tmp_path))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stdout == "" and "Traceback" not in proc.stderr
    [line] = proc.stderr.strip().splitlines()
    assert f"{phase}: tickets[0].paths[1] (ticket T1): 'src/[abc'" in line
    assert "(and 2 more problems)" in line


def test_missing_phase_file(tmp_path: Path) -> None:
    proc = runner_cli("run", str(tmp_path / "nope.yaml"))
    assert proc.returncode == 2
    assert "nope.yaml: no such file" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_bad_arguments_exit_2(tmp_path: Path) -> None:
    phase = tmp_path / "p.yaml"
    phase.write_text("name: p\ntickets:\n" + GOOD_TICKET)
    assert runner_cli("run", str(phase), "--concurrency", "0").returncode == 2
    assert runner_cli("frobnicate").returncode == 2
