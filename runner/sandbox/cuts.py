"""A command's stream that broke while the engine and the sandbox were fine: a load
balancer's idle timeout, an API server rolling, a kubelet restarting. Real clusters and
remote engines do it now and then, and it is not a lost engine.

Every backend tells the two apart the same way: the engine is asked whether it answers, for
ENGINE_PATIENCE seconds (``still_answers``); only one that does not stops the run (exit 3).
Otherwise the backend raises StreamCut, and ``through_cuts`` decides: a command the caller
said may run again (it reads, or running it twice does what running it once does) runs
again, up to CUT_TRIES times; any other (the agent's own command, a check) ends as stopped,
with what it started stopped too (an exec's process outlives its stream), counted as a stop
from outside, so ``retries:`` reruns the ticket exactly as for a lost Pod. Each is said in
the ticket's log.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from runner.sandbox.output import ExecResult, RunCommand, command_label, output_to_file
from runner.sandbox.spec import STOPPED_EXIT

ENGINE_PATIENCE = 20.0   # seconds an engine that did not answer is asked again before it is lost
CUT_TRIES = 3            # runs of a repeatable command whose stream broke, at most

Say = Callable[[str], None]      # a line for the ticket's log


class Sayer:
    """A sandbox's ``say``: lines kept until whoever opened it tells where they go (what
    its provisioning said comes first)."""

    def __init__(self) -> None:
        self._to: Say | None = None
        self._kept: list[str] = []

    def __call__(self, line: str) -> None:
        if self._to is None:
            self._kept.append(line)
        else:
            self._to(line)

    def to(self, say: Say | None) -> None:
        if say is not None:
            self._to = say
            for line in self._kept:
                say(line)
            self._kept.clear()


class StreamCut(Exception):
    """The command's stream broke before its exit code came; the engine answers and the
    sandbox is there. What the command started may still run in it."""


def still_answers(probe: Callable[[], object], patience: float = ENGINE_PATIENCE) -> bool:
    """Whether ``probe`` (a cheap read of the engine's) succeeds within ``patience``
    seconds, asked again with a short backoff."""
    from tenacity import Retrying, stop_after_delay, wait_exponential

    try:
        for attempt in Retrying(stop=stop_after_delay(patience), reraise=True,
                                wait=wait_exponential(multiplier=0.5, max=4)):
            with attempt:
                probe()
    except Exception:      # noqa: BLE001 - whatever it raised, it did not answer
        return False
    return True


def through_cuts(attempt: Callable[[int], ExecResult], argv: Sequence[str], *,
                 repeatable: bool, where: str, say: Say,
                 stop: Callable[[], None]) -> ExecResult:
    """``attempt(n)``'s result (n: the run, from 0), run again after a StreamCut when
    ``repeatable``; a cut that ends it (not repeatable, or CUT_TRIES cuts) stops what it
    started (``stop``: the sandbox's worker processes, counted as a stop from outside) and
    is a stopped result saying why."""
    # Only runner's own commands are named: the others' words may be the worker's.
    what = f"`{command_label(argv)}`" if repeatable else "a command of the ticket's own"
    for number in range(CUT_TRIES):
        try:
            return attempt(number)
        except StreamCut as cut:
            why = f"the stream of {what} to {where} broke ({str(cut)[:200]})"
            if repeatable and number + 1 < CUT_TRIES:
                say(f"{why}; it runs again")
                continue
            tries = f", {number + 1} times" if number else ""
            reason = f"{why}{tries}; what it started was stopped"
            say(reason)
            stop()
            return ExecResult(exit_code=STOPPED_EXIT, output=reason, stopped=reason)
    raise AssertionError("unreachable")


def file_through_cuts(run: RunCommand, dest: Path, limit: int, argv: Sequence[str], *,
                      where: str, say: Say, stop: Callable[[], None]) -> ExecResult:
    """A backend's exec_to_file: ``run``'s stdout into ``dest`` (output_to_file), run again
    after a cut (it must be repeatable) into ``dest`` made anew."""
    def attempt(number: int) -> ExecResult:
        if number:
            dest.unlink(missing_ok=True)     # what the run whose stream broke wrote
        return output_to_file(run, dest, limit)

    return through_cuts(attempt, argv, repeatable=True, where=where, say=say, stop=stop)
