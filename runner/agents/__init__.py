"""Agents do a ticket's work inside a sandbox. The Agent protocol (base.py) is the swap
point; kinds.py says what each kind needs, and makes it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from runner.agents.base import Agent, AgentContext, AgentResult
from runner.agents.kinds import KINDS

if TYPE_CHECKING:
    from runner.phase.model import Ticket

__all__ = ["Agent", "AgentContext", "AgentResult", "agent_for"]


def agent_for(ticket: Ticket) -> Agent:
    return KINDS[ticket.agent].make()
