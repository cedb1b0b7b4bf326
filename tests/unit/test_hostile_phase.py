"""A phase file is hostile until proven otherwise: limits that mean nothing, duplicate keys,
deep nesting, alias bombs and odd bytes are each one PhaseFileError line, found when the file
is read (the loader in-process; the CLI's own path is in test_hostile_cli.py)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from runner.errors import InputError, OverrideError, PhaseFileError
from runner.phase.imageref import check_image
from runner.phase.load import find_cycle, load_phase
from runner.phase.overrides import apply_overrides
from runner.phase.safeyaml import MAX_BYTES

TICKET = "  - {id: A, agent: script, run: 'true'}\n"


def _refusal(tmp_path: Path, text: str | bytes) -> str:
    path = tmp_path / "phase.yaml"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    with pytest.raises(PhaseFileError) as caught:
        load_phase(path)
    message = str(caught.value)
    assert len(message.splitlines()) == 1, message
    assert message.startswith(f"{path}: ")
    return message.removeprefix(f"{path}: ")


@pytest.mark.parametrize(("setting", "says"), [
    ("resources: {cpus: 0.0000000001}", "resources.cpus: 1e-10 CPUs is not a limit"),
    ("resources: {cpus: 0.009}", "resources.cpus: 0.009 CPUs"),
    ("resources: {cpus: 100000}", "resources.cpus: 100000.0 CPUs"),
    ("resources: {cpus: .nan}", "resources.cpus: must be a finite number"),
    ("resources: {cpus: .inf}", "resources.cpus: must be a finite number"),
    ("resources: {memory: '0'}", "resources.memory: '0' is not a memory limit"),
    ("resources: {memory: 5m}", "resources.memory: '5m' is not a memory limit"),
    ("resources: {memory: 0.001k}", "resources.memory: '0.001k'"),
    ("resources: {memory: 9999999999999g}", "resources.memory: '9999999999999g'"),
    ("resources: {memory: '" + "9" * 400 + "g'}", "resources.memory: '99999"),
    ("resources: {pids: 15}", "resources.pids: Input should be greater than or equal to 16"),
    ("resources: {pids: 99999999999999999999999}", "resources.pids: Input should be less"),
    ("budget: {usd: .inf}", "budget.usd: must be a finite number"),
    ("budget: {usd: .nan}", "budget.usd: must be a finite number"),
    ("prices: {m: {input: .nan, output: 1}}", "prices.m.input: must be a finite number"),
    ("prices: {m: {input: -1, output: 1}}", "prices.m.input: Input should be greater"),
    ("concurrency: 1000000", "concurrency: Input should be less than or equal to 1000"),
    ("max_reruns: 1000", "max_reruns: Input should be less than or equal to 100"),
])
def test_a_phase_limit_that_means_nothing_is_refused(tmp_path: Path, setting: str,
                                                    says: str) -> None:
    assert _refusal(tmp_path, f"name: p\n{setting}\ntickets:\n{TICKET}").startswith(says)


@pytest.mark.parametrize(("setting", "says"), [
    ("timeout: .inf", "timeout (ticket A): must be a finite number"),
    ("timeout: 1e400", "timeout (ticket A): must be a finite number"),   # YAML makes it inf
    ("timeout: .nan", "timeout (ticket A): must be a finite number"),
    ("timeout: 0", "timeout (ticket A): Input should be greater than 0"),
    ("timeout: 604801", "timeout (ticket A): Input should be less than or equal to 604800"),
    ("max_turns: 100000", "max_turns (ticket A): Input should be less than or equal to 10000"),
    ("max_tokens: 10000000000000000000000", "max_tokens (ticket A): Input should be less"),
    ("max_fix_loops: 1000", "max_fix_loops (ticket A): Input should be less"),
    ("max_reruns: 1000", "max_reruns (ticket A): Input should be less"),
    ("retries: 1000", "retries (ticket A): Input should be less"),
])
def test_a_ticket_limit_that_means_nothing_is_refused(tmp_path: Path, setting: str,
                                                     says: str) -> None:
    text = f"name: p\ntickets:\n  - {{id: A, agent: script, run: x, {setting}}}\n"
    assert _refusal(tmp_path, text).startswith(f"tickets[0].{says}")


def test_limits_at_their_bounds_are_taken(tmp_path: Path) -> None:
    path = tmp_path / "phase.yaml"
    path.write_text("name: p\nresources: {cpus: 0.01, memory: 6m, pids: 16}\nconcurrency: 1000\n"
                    "budget: {usd: 1e12}\ntickets:\n  - {id: A, agent: script, run: x, "
                    "timeout: 604800, max_turns: 10000, max_tokens: 1000000000, retries: 100}\n")
    phase = load_phase(path)
    assert phase.resources.cpus == 0.01 and phase.tickets[0].timeout == 604800


def test_an_override_is_held_to_the_same_limits(tmp_path: Path) -> None:
    path = tmp_path / "phase.yaml"
    path.write_text(f"name: p\ntickets:\n{TICKET}")
    phase = load_phase(path)
    with pytest.raises(OverrideError) as caught:
        apply_overrides(phase, flags={"concurrency": 10**30}, env={})
    assert str(caught.value).startswith("--concurrency: 1000000000000000000000000000000 is not "
                                        "valid for concurrency: Input should be less")
    with pytest.raises(OverrideError) as caught:
        apply_overrides(phase, flags={}, env={"RUNNER_IMAGE": "Runner:Latest\nx"})
    [line] = str(caught.value).splitlines()
    assert line.startswith("RUNNER_IMAGE: 'Runner:Latest\\nx' is not valid for image: ")


@pytest.mark.parametrize(("text", "says"), [
    ("name: p\ntickets:\n" + TICKET + "tickets:\n  - {id: B, agent: script, run: x}\n",
     "tickets: given twice (lines 2 and 4); a key may appear once"),
    ("name: p\nname: q\ntickets:\n" + TICKET, "name: given twice (lines 1 and 2)"),
    ("name: p\ntickets:\n  - {id: A, agent: script, run: x, run: y}\n",
     "tickets[0].run: given twice (line 3, columns 28 and 36)"),
    ("name: p\nresources:\n  cpus: 1\n  cpus: 2\ntickets:\n" + TICKET,
     "resources.cpus: given twice (lines 3 and 4)"),
    ("name: p\nprices: {m: {input: 1, output: 2, input: 3}}\ntickets:\n" + TICKET,
     "prices.m.input: given twice"),
    # YAML 1.1 reads both as True: the same key to Python, so the same key here.
    ("name: p\nprices: {yes: {input: 1, output: 2}, true: {input: 1, output: 2}}\n"
     "tickets:\n" + TICKET, "prices.True: given twice"),
])
def test_a_key_given_twice_is_refused_at_any_level(tmp_path: Path, text: str,
                                                   says: str) -> None:
    assert _refusal(tmp_path, text).startswith(says)


def test_merge_keys_and_aliases_still_work(tmp_path: Path) -> None:
    """`<<:` is not a duplicate: explicit keys win over merged ones, as YAML says."""
    path = tmp_path / "phase.yaml"
    path.write_text("name: p\ntickets:\n  - &t {id: A, agent: script, run: x, checks: &c [make]}"
                    "\n  - {<<: *t, id: B, run: y}\n  - {id: C, agent: script, run: z, "
                    "checks: *c}\n")
    phase = load_phase(path)
    assert [(t.id, t.run, t.checks) for t in phase.tickets] == [
        ("A", "x", ["make"]), ("B", "y", ["make"]), ("C", "z", ["make"])]


@pytest.mark.parametrize("depth", [33, 20_000, 500_000])
def test_deep_nesting_is_refused_before_it_recurses(tmp_path: Path, depth: int) -> None:
    for text in ("name: p\ntickets: " + "[" * depth + "]" * depth + "\n",
                 "name: p\ntickets: " + "{a: " * depth + "1" + "}" * depth + "\n"):
        if len(text) > MAX_BYTES:
            text = text[:MAX_BYTES]   # a truncated flood still must not recurse
        says = _refusal(tmp_path, text)
        assert "nested more than 32 levels deep at line 2" in says or "YAML" in says, says


def test_block_nesting_is_refused_too(tmp_path: Path) -> None:
    text = "name: p\ntickets:\n" + "".join("  " * i + f"k{i}:\n" for i in range(40))
    assert _refusal(tmp_path, text).startswith("nested more than 32 levels deep")


def test_an_alias_bomb_is_refused_at_once(tmp_path: Path) -> None:
    lines = ["x0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"x{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    started = time.monotonic()
    says = _refusal(tmp_path, "\n".join(lines) + "\nname: p\ntickets:\n" + TICKET)
    assert says.startswith("holds more than 2,000,000 values (each use of an alias counted")
    assert time.monotonic() - started < 2


@pytest.mark.parametrize(("data", "says"), [
    (b"name: p\ntickets:\n  - {id: A, agent: script, run: '\xff'}\n",
     "not UTF-8: byte 0xff at line 3, column 34; save the file as UTF-8"),
    ("name: p\ntickets:\n  - {id: Ä, run: '\u00e9".encode("latin-1"),
     "not UTF-8: byte 0xc4 at line 3, column 10"),
    (b"\xfe\xff\x00n\x00a", "not UTF-8: byte 0xfe at line 1, column 1"),
    (b"name: p\ntickets:\n  - {id: A, agent: script, run: \"a\\0b\"}\n",
     "a NUL character at line 3; no value may hold one"),
    (b"name: p\x00\n", "not valid YAML"),
    (b"name: p\ntimeout: 2001-02-30\n", "a value cannot be read: day is out of range"),
    (b"name: !!int x\n", "a value cannot be read"),
    (b"name: !!python/object:os.system x\n", "not valid YAML at line 1, column 7: could not "
                                             "determine a constructor"),
    (b"? [a, b]\n: c\n", "not valid YAML at line 1, column 3: found unhashable key"),
])
def test_odd_bytes_are_one_line(tmp_path: Path, data: bytes, says: str) -> None:
    assert _refusal(tmp_path, data).startswith(says)


def test_a_file_past_the_size_cap_is_refused_unread(tmp_path: Path) -> None:
    text = "name: p\ntickets:\n" + TICKET + "# " + "x" * MAX_BYTES + "\n"
    assert _refusal(tmp_path, text).startswith("larger than 16 MiB")


def test_not_a_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    assert _refusal_of(tmp_path) == "is a directory, not a file; give the path of a phase YAML file"
    with pytest.raises(PhaseFileError, match="/dev/zero: is a device, not a file"):
        load_phase(Path("/dev/zero"))


def _refusal_of(path: Path) -> str:
    with pytest.raises(PhaseFileError) as caught:
        load_phase(path)
    return str(caught.value).removeprefix(f"{path}: ")


def test_keys_and_ids_cannot_start_a_line_of_their_own(tmp_path: Path) -> None:
    """A key or an id goes into the message: its newline or U+2028 is shown escaped."""
    says = _refusal(tmp_path, 'name: p\n"col\\nour\\u2028": 1\ntickets:\n' + TICKET)
    assert says == "col\\nour\\u2028: unknown key; remove it or check its spelling"
    says = _refusal(tmp_path, 'name: p\ntickets:\n  - {id: "a\\nb", agent: script, run: x}\n')
    assert says.startswith("tickets[0].id (ticket a\\nb): 'a\\nb' may use only")


def test_a_megabyte_value_is_quoted_short(tmp_path: Path) -> None:
    says = _refusal(tmp_path, f"name: p\ntickets:\n  - {{id: '{'x y' * 200_000}', run: x}}\n")
    assert len(says) < 400, says


def test_a_long_dependency_chain_does_not_recurse() -> None:
    chain = {f"T{i}": [f"T{i + 1}"] for i in range(20_000)}
    assert find_cycle(chain) is None
    chain["T20000"] = ["T7"]
    cycle = find_cycle(chain)
    assert cycle is not None and cycle[0] == cycle[-1] == "T7" and len(cycle) == 19_995


@pytest.mark.parametrize("ref", ["runner-worker:latest", "debian:bookworm-slim", "ubuntu",
                                 "localhost:5000/team/img:1.2", "a__b/c---d.e_f",
                                 "a" * 237, "a/" + "b" * 243, "x@sha256:" + "a" * 64,
                                 "sha256:" + "0" * 64,
                                 "Registry.Example.com/x:T_1"])
def test_image_references_docker_takes(ref: str) -> None:
    assert check_image(ref) == ref


@pytest.mark.parametrize(("ref", "says"), [
    ("Runner-Worker", "is not an image reference (a repository name is lower case)"),
    ("a b", "is not an image reference"), ("x:", "is not"), ("", "is not"), ("-a", "is not"),
    ("a/", "is not"), ("a..b", "is not"), ("a:b:c", "is not"), ("x:" + "t" * 129, "is not"),
    ("x@sha256:abc", "is not"), ("x@md5:" + "a" * 32, "a digest is sha256: and 64"),
    ("x@sha256:" + "a" * 63 + "g", "is not"), ("a" * 238, "an image name is at most 255"),
    ("a/" + "b" * 244, "at most 255"), ("[::1]:5000/x", "is not"),
    ("a" * 100_000, "is longer than any image reference can be"),
])
def test_image_references_docker_refuses(ref: str, says: str) -> None:
    with pytest.raises(ValueError) as caught:
        check_image(ref)
    assert says in str(caught.value) and len(str(caught.value)) < 300


def test_a_bad_image_in_the_phase_file_is_its_field(tmp_path: Path) -> None:
    says = _refusal(tmp_path, f"name: p\nimage: 'Runner Worker'\ntickets:\n{TICKET}")
    assert says.startswith("image: 'Runner Worker' is not an image reference")


@pytest.mark.parametrize(("ids", "says"), [
    (("../x",), "RUN_ID '../x' is not a run id"), ((".git",), "RUN_ID '.git'"),
    (("a/b",), "RUN_ID 'a/b'"), (("",), "RUN_ID ''"), (("x" * 101,), "RUN_ID 'xxx"),
    (("20260101-120000-ab12", "../T"), "TICKET '../T' is not a ticket id"),
    (("20260101-120000-ab12", "a/b"), "TICKET 'a/b'"),
])
def test_ids_from_the_command_line_are_checked(ids: tuple[str, ...], says: str) -> None:
    from runner.phase.ids import checked_run_id, checked_ticket_id

    with pytest.raises(InputError) as caught:
        checked_run_id(ids[0])
        checked_ticket_id(ids[1])
    assert str(caught.value).startswith(says) and caught.value.exit_code == 2


def test_the_critical_path_of_a_long_chain_does_not_recurse(tmp_path: Path) -> None:
    from runner.records.events import TicketStatus
    from runner.records.outcome import TicketOutcome
    from runner.records.record import Asked, RunResult
    from runner.views.throughput import critical_path

    count = 1000     # each depending on the one after it
    path = tmp_path / "phase.yaml"
    path.write_text("name: p\ntickets:\n" + "".join(
        f"  - {{id: T{i}, agent: script, run: x"
        + (f", depends_on: [T{i + 1}]}}\n" if i + 1 < count else "}\n") for i in range(count)))
    phase = load_phase(path)
    outcomes = {f"T{i}": TicketOutcome(ticket=f"T{i}", status=TicketStatus.INTEGRATED,
                                       started=1.0, ended=3.0) for i in range(count)}
    outcomes["T5"] = TicketOutcome(ticket="T5", status=TicketStatus.FAILED)   # took no time
    result = RunResult(run_id="r", phase="p", base_sha="0" * 40, target="t", run_dir=tmp_path,
                       outcomes=outcomes, started=0.0)
    asked = {t.id: Asked.of(t) for t in phase.tickets}
    assert critical_path(result, asked) == 2.0 * (count - 1)
