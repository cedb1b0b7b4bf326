"""The script agent: the ticket's ``run`` as a bash script in /workspace."""

from __future__ import annotations

from runner.agents import AgentContext, AgentResult
from runner.sandbox import STRICT_BASH


class ScriptAgent:
    def run(self, ctx: AgentContext) -> AgentResult:
        assert ctx.ticket.run is not None  # the phase loader refuses script tickets without it
        timeout = ctx.remaining()
        result = ctx.sandbox.exec([*STRICT_BASH, ctx.ticket.run], timeout=timeout,
                                  on_output=ctx.on_output)
        if result.timed_out:
            return AgentResult(ok=False, reason=f"timed out after {ctx.ticket.timeout:g}s")
        if result.exit_code != 0:
            return AgentResult(ok=False, reason=f"run exited with {result.exit_code}")
        return AgentResult(ok=True)
