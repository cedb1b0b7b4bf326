"""Shell agents: `script` runs the ticket's `run` in /workspace; `command` runs a CLI agent
the same way, with the prompt in RUNNER_PROMPT and only the host variables the ticket opts
into (`env:`)."""

from __future__ import annotations

import os

from runner.agents.base import AgentContext, AgentResult
from runner.sandbox import STRICT_BASH


class ScriptAgent:
    def run(self, ctx: AgentContext) -> AgentResult:
        return run_shell(ctx, {})


class CommandAgent:
    def run(self, ctx: AgentContext) -> AgentResult:
        env = {name: os.environ[name] for name in ctx.ticket.env if name in os.environ}
        return run_shell(ctx, {"RUNNER_PROMPT": ctx.ticket.prompt or "", **env})


def run_shell(ctx: AgentContext, env: dict[str, str]) -> AgentResult:
    assert ctx.ticket.run is not None  # the phase loader refuses shell tickets without it
    result = ctx.sandbox.exec([*STRICT_BASH, ctx.ticket.run], timeout=ctx.remaining(),
                              on_output=ctx.on_output, env=env)
    if result.stopped:
        return AgentResult(ok=False, reason=result.stopped)
    if result.timed_out:
        return AgentResult(ok=False, reason=f"timed out after {ctx.ticket.timeout:g}s")
    if result.exit_code != 0:
        return AgentResult(ok=False, reason=f"run exited with {result.exit_code}")
    return AgentResult(ok=True)
