"""The Agent protocol (the swap point) and what an agent is given and gives back."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from runner.records import CheckResult, Ledger, Transcript, Usage
from runner.sandbox import OutputHandler, Sandbox

if TYPE_CHECKING:
    from runner.phase import Phase, Ticket


@dataclass(frozen=True)
class AgentResult:
    ok: bool
    reason: str = ""              # why it failed, for the user
    checked: bool = False         # the agent already ran the ticket's checks (fix loops)
    fix_loops: int = 0
    retries: int = 0
    turns: int = 0


@dataclass(frozen=True)
class AgentContext:
    ticket: Ticket
    phase: Phase
    sandbox: Sandbox
    on_output: OutputHandler
    deadline: float               # time.monotonic() by which the whole ticket must end
    transcript: Transcript
    ledger: Ledger
    account: Callable[[Usage], None]     # record one API call's usage for this ticket
    commit: Callable[[str], None]        # commit what is in /workspace with this message
    check: Callable[[], CheckResult]     # run the ticket's checks
    cancelled: threading.Event           # set when the run is interrupted

    def remaining(self) -> float:
        return max(1.0, self.deadline - time.monotonic())


class Agent(Protocol):
    def run(self, ctx: AgentContext) -> AgentResult: ...
