"""Agents do a ticket's work inside a sandbox. The Agent protocol (base.py) is the swap
point; kinds.py says what each kind needs, and makes it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from runner.faces import lazy_names

from runner.agents.base import Agent, AgentContext, AgentResult
from runner.agents.kinds import KINDS

if TYPE_CHECKING:
    from runner.phase import Ticket

__all__ = ["Agent", "AgentContext", "AgentResult", "agent_for"]


def agent_for(ticket: Ticket) -> Agent:
    return KINDS[ticket.agent].make()


# What other packages import from here, by the module that holds it: each loaded when
# first asked for (runner/faces.py).
_EXPORTS = {
    "runner.agents.claude_binary": ("binary_for", "binary_version", "find_binary"),
    "runner.agents.kinds": ("DEFAULT_KIND", "KINDS", "AgentKind", "kinds_where"),
    "runner.agents.llm": ("api_message", "create_message"),
    "runner.agents.tools": ("cut",),
}
__getattr__ = lazy_names(__name__, globals(), _EXPORTS)

if TYPE_CHECKING:
    from runner.agents.claude_binary import binary_for, binary_version, find_binary
    from runner.agents.kinds import DEFAULT_KIND, KINDS, AgentKind, kinds_where
    from runner.agents.llm import api_message, create_message
    from runner.agents.tools import cut
