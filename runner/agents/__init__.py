"""Agents do a ticket's work inside a sandbox. The Agent protocol is the swap point."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from runner.checks import CheckResult
from runner.ledger import Ledger, Usage
from runner.phase import Phase, Ticket
from runner.sandbox import OutputHandler, Sandbox
from runner.transcript import Transcript


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


def agent_for(ticket: Ticket) -> Agent:
    # Imported here, and only the kind asked for: the anthropic SDK takes most of a second
    # to import, and script phases never need it.
    if ticket.agent == "anthropic":
        from runner.agents.anthropic import AnthropicAgent

        return AnthropicAgent()
    if ticket.agent == "claude-code":
        from runner.agents.claude_code import ClaudeCodeAgent

        return ClaudeCodeAgent()
    from runner.agents.script import CommandAgent, ScriptAgent

    agents: dict[str, type[Agent]] = {"script": ScriptAgent, "command": CommandAgent}
    return agents[ticket.agent]()
