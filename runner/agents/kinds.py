"""The agent kinds, each saying what it needs: the phase loader, the run, the worker and the
doctor ask here and never test a kind's name. A new kind is its own module under agents/,
a factory here and one line in KINDS. Light on purpose: the phase loader reads it, and a
kind's module (the anthropic SDK, most of a second to import) is imported only when a
ticket runs it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from runner.agents.base import Agent


@dataclass(frozen=True)
class AgentKind:
    name: str
    works_from: Literal["prompt", "run"]   # what a ticket of this kind gives: a task or a shell
    on_models: bool          # runs on the phase's models: priced, budgeted, tiered
    needs_gateway: bool      # calls the Messages API from inside its sandbox (the key stays out)
    runs_claude_code: bool   # runs the Claude Code binary, delivered into its sandbox
    takes_env: bool          # may be given host variables (a ticket's env:)
    make: Callable[[], Agent]   # the agent, its module imported only now

    @property
    def article(self) -> str:
        return "an" if self.name[0] in "aeiou" else "a"


def _anthropic() -> Agent:
    from runner.agents.anthropic import AnthropicAgent

    return AnthropicAgent()


def _claude_code() -> Agent:
    from runner.agents.claude_code import ClaudeCodeAgent

    return ClaudeCodeAgent()


def _script() -> Agent:
    from runner.agents.script import ScriptAgent

    return ScriptAgent()


def _command() -> Agent:
    from runner.agents.script import CommandAgent

    return CommandAgent()


KINDS = {kind.name: kind for kind in (
    AgentKind("anthropic", "prompt", on_models=True, needs_gateway=False,
              runs_claude_code=False, takes_env=False, make=_anthropic),
    AgentKind("claude-code", "prompt", on_models=True, needs_gateway=True,
              runs_claude_code=True, takes_env=False, make=_claude_code),
    AgentKind("script", "run", on_models=False, needs_gateway=False, runs_claude_code=False,
              takes_env=False, make=_script),
    AgentKind("command", "run", on_models=False, needs_gateway=True, runs_claude_code=False,
              takes_env=True, make=_command),
)}
DEFAULT_KIND = "anthropic"


def kinds_where(**wanted: object) -> list[str]:
    """The names of the kinds whose fields have these values (in KINDS' order)."""
    return [name for name, kind in KINDS.items()
            if all(getattr(kind, field) == value for field, value in wanted.items())]
