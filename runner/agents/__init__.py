"""Agents do a ticket's work inside a sandbox. The Agent protocol is the swap point."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

from runner.phase import Ticket
from runner.sandbox import OutputHandler, Sandbox


@dataclass(frozen=True)
class AgentContext:
    ticket: Ticket
    sandbox: Sandbox
    on_output: OutputHandler
    deadline: float               # time.monotonic() by which the whole ticket must end

    def remaining(self) -> float:
        return max(1.0, self.deadline - time.monotonic())


@dataclass(frozen=True)
class AgentResult:
    ok: bool
    reason: str = ""              # why it failed, for the user


class Agent(Protocol):
    def run(self, ctx: AgentContext) -> AgentResult: ...


def agent_for(ticket: Ticket) -> Agent:
    from runner.agents.script import ScriptAgent

    agents: dict[str, type[Agent]] = {"script": ScriptAgent}
    return agents[ticket.agent]()
