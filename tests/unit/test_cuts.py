"""The rule every backend applies to a command whose stream broke (sandbox/cuts.py): run
again when repeatable, else stopped with what it started stopped; an engine asked again
before it counts as lost; what a sandbox says before it is given a log kept for it."""

from __future__ import annotations

from runner.sandbox import END_MARK, START_MARK, STOPPED_EXIT, ExecResult
from runner.sandbox.cuts import (CUT_TRIES, Sayer, StreamCut, command_label, still_answers,
                                 through_cuts)


def _cut_first(cuts: int, runs: list[int]):
    def attempt(run: int) -> ExecResult:
        runs.append(run)
        if len(runs) <= cuts:
            raise StreamCut("ConnectionResetError: reset by peer")
        return ExecResult(exit_code=0, output="done")
    return attempt


def test_a_repeatable_command_cut_runs_again_and_says_so() -> None:
    runs: list[int] = []
    said: list[str] = []
    stops: list[bool] = []
    result = through_cuts(_cut_first(1, runs), ["git", "bundle", "create", "-"],
                          repeatable=True, where="Pod p", say=said.append,
                          stop=lambda: stops.append(True))
    assert result.ok and result.output == "done"
    assert runs == [0, 1] and not stops
    assert said == ["the stream of `git bundle create -` to Pod p broke "
                    "(ConnectionResetError: reset by peer); it runs again"]


def test_the_agents_command_cut_is_stopped_once_and_what_it_started_too() -> None:
    runs: list[int] = []
    said: list[str] = []
    stops: list[bool] = []
    result = through_cuts(_cut_first(1, runs), ["bash", "-c", "worker's words"],
                          repeatable=False,
                          where="container c", say=said.append,
                          stop=lambda: stops.append(True))
    assert runs == [0] and stops == [True]
    assert result.exit_code == STOPPED_EXIT and not result.ok
    assert result.stopped.startswith("the stream of a command of the ticket's own to "
                                     "container c broke (ConnectionResetError")
    assert "worker" not in result.stopped
    assert result.stopped.endswith("what it started was stopped") and said == [result.stopped]


def test_a_repeatable_command_cut_every_time_ends_stopped_after_its_tries() -> None:
    runs: list[int] = []
    stops: list[bool] = []
    result = through_cuts(_cut_first(CUT_TRIES, runs), ["du"], repeatable=True, where="Pod p",
                          say=lambda _line: None, stop=lambda: stops.append(True))
    assert runs == list(range(CUT_TRIES)) and stops == [True]
    assert f"{CUT_TRIES} times" in result.stopped


def test_a_reads_marks_are_left_out_of_its_name_and_a_long_one_is_cut() -> None:
    marked = ["sh", "-c", _marked_script(), START_MARK, END_MARK, "git", "-c",
              "core.hooksPath=/dev/null", "rev-parse", "HEAD"]
    assert command_label(marked) == "git rev-parse HEAD"
    assert command_label(["bash", "--norc", "-eo", "pipefail", "-c", "make  test\n"]) \
        == "make test"
    long = command_label(["bash", "-c", "echo " + "x" * 200 + "\nmore"])
    assert len(long) == 60 and long.endswith("…") and "\n" not in long


def _marked_script() -> str:
    from runner.sandbox.output import _MARKED

    return _MARKED


def test_an_engine_that_answers_again_within_the_wait_still_answers() -> None:
    calls: list[float] = []

    def probe() -> None:
        calls.append(0.0)
        if len(calls) < 3:
            raise ConnectionRefusedError("not yet")

    assert still_answers(probe, patience=10)
    assert len(calls) == 3
    assert not still_answers(lambda: (_ for _ in ()).throw(OSError("down")), patience=0.3)


def test_what_a_sandbox_says_before_it_has_a_log_comes_first_when_it_gets_one() -> None:
    say = Sayer()
    say("sent again")
    heard: list[str] = []
    say.to(None)          # no log given: still kept
    say.to(heard.append)
    say("runs again")
    assert heard == ["sent again", "runs again"]
