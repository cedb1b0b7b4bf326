"""The anthropic agent: a tool-use loop that runs here, in the runner process; only its tool
calls run in the worker's container, so the API key never enters one.

Retries: the SDK's own retries are off (max_retries=0) and tenacity is the one retry layer,
so every retry is seen, logged, counted, and bounded by the ticket's deadline.
"""

from __future__ import annotations

import time
from typing import Any

import anthropic
from tenacity import RetryCallState

from runner.agents.base import AgentContext, AgentResult
from runner.agents.llm import REQUEST_TIMEOUT, api_message, create_message
from runner.agents.tools import TOOLS, run_tool
from runner.records import Usage

OUTPUT_TOKENS = 8192          # max_tokens of one response
def as_params(blocks: list[Any]) -> list[dict[str, Any]]:
    """Response blocks as request params: only the fields the API takes back, no empty text."""
    params: list[dict[str, Any]] = []
    for block in blocks:
        if block.type == "text" and block.text.strip():
            params.append({"type": "text", "text": block.text})
        elif block.type == "tool_use":
            params.append({"type": "tool_use", "id": block.id, "name": block.name,
                           "input": block.input})
    return params


def system_prompt(ctx: AgentContext) -> str:
    ticket, phase = ctx.ticket, ctx.phase
    paths = ", ".join(ticket.paths) if ticket.paths else "any file"
    checks = "; ".join(f"`{c}`" for c in ticket.checks) or "none"
    return (
        f"You are a worker of runner doing one ticket in your own sandbox.\n"
        f"Ticket: {ticket.id} — {ticket.display_title}\n"
        f"Your clone of the repository is /workspace, on its own branch; every tool runs "
        f"there. Network: {phase.network}.\n"
        f"Files you may change: {paths}. Changes elsewhere fail the ticket.\n"
        f"When you are done, call `finish` with a summary and a commit message: runner "
        f"commits your changes and runs the ticket's checks ({checks}). If they fail you get "
        f"their output and continue.\n\nThe ticket:\n{ticket.prompt}")


class AnthropicAgent:
    def run(self, ctx: AgentContext) -> AgentResult:
        return _Loop(ctx).run()


class _Loop:
    def __init__(self, ctx: AgentContext) -> None:
        self.ctx = ctx
        self.model = ctx.phase.model_for(ctx.ticket)
        self.client = anthropic.Anthropic(max_retries=0, timeout=REQUEST_TIMEOUT)
        self.messages: list[dict[str, Any]] = [
            {"role": "user", "content": "Do the ticket described in the system prompt."}]
        self.turns = self.retries = self.fix_loops = 0

    def result(self, ok: bool, reason: str = "", checked: bool = False) -> AgentResult:
        return AgentResult(ok=ok, reason=reason, checked=checked, fix_loops=self.fix_loops,
                           retries=self.retries, turns=self.turns)

    def run(self) -> AgentResult:
        ctx, ticket = self.ctx, self.ctx.ticket
        system = system_prompt(ctx)
        while True:
            if stop := self._limit_reached():
                return self.result(False, stop)
            try:
                response = self._call(system)
            except anthropic.APIStatusError as e:
                return self.result(False, api_message(e))
            except anthropic.APIConnectionError as e:
                return self.result(False, f"API unreachable: {e}")
            self.turns += 1
            usage = response.usage
            ctx.account(Usage.from_api(usage))
            content = as_params(response.content)
            ctx.transcript.write("response", model=self.model, content=content,
                                 stop_reason=response.stop_reason,
                                 usage=usage.model_dump(mode="json", exclude_none=True))
            if response.stop_reason == "refusal":
                return self.result(False, "the model refused the ticket")
            if content:
                self.messages.append({"role": "assistant", "content": content})
            for block in content:
                if block["type"] == "text" and block["text"].strip():
                    ctx.on_output(block["text"].strip().splitlines()[-1])
            tool_uses = [b for b in content if b["type"] == "tool_use"]
            used = ctx.ledger.ticket(ticket.id).usage.tokens
            if used > ticket.max_tokens:
                return self.result(False, f"token budget exceeded: {used} tokens used of "
                                   f"max_tokens {ticket.max_tokens}")
            if not tool_uses:
                if response.stop_reason == "pause_turn" and content:
                    continue            # the server paused a long turn: send it back as is
                if response.stop_reason == "max_tokens" and content:
                    self._say("Your reply was cut off; go on, and use the tools.")
                    continue
                finished = self._finish(ticket.default_commit_message)
            else:
                finished = self._use_tools(tool_uses)
            if finished is not None:
                return finished

    def _limit_reached(self) -> str | None:
        ctx = self.ctx
        if ctx.cancelled.is_set():
            return "the run was interrupted"
        if ctx.sandbox.stopped_for:     # over its disk budget: its processes are gone
            return ctx.sandbox.stopped_for
        if self.turns >= ctx.ticket.max_turns:
            return f"reached max_turns ({ctx.ticket.max_turns}) without finishing"
        if ctx.ledger.budget_reached():
            return f"the phase budget of ${ctx.ledger.budget_usd:g} is spent"
        if time.monotonic() >= ctx.deadline:
            return f"timed out after {ctx.ticket.timeout:g}s"
        return None

    def _call(self, system: str) -> Any:
        ctx = self.ctx

        def log_retry(state: RetryCallState) -> None:
            self.retries += 1
            error = state.outcome.exception() if state.outcome else None
            wait = state.next_action.sleep if state.next_action else 0.0
            ctx.transcript.write("retry", attempt=state.attempt_number, wait=round(wait, 2),
                                 error=f"{type(error).__name__}: {error}")
            ctx.on_output(f"runner: API {type(error).__name__}, retry {self.retries} in "
                          f"{wait:.1f}s")

        ctx.transcript.write("request", model=self.model, messages=len(self.messages))
        return create_message(self.client, deadline=ctx.deadline, cancelled=ctx.cancelled,
                              on_retry=log_retry, model=self.model, system=system,
                              tools=TOOLS, max_tokens=OUTPUT_TOKENS, messages=self.messages)

    def _use_tools(self, tool_uses: list[dict[str, Any]]) -> AgentResult | None:
        ctx, results, outcome = self.ctx, [], None
        for index, use in enumerate(tool_uses):
            last = index == len(tool_uses) - 1
            if use["name"] == "finish" and not last:
                # Nothing may change after the checks: finish counts only as the last call.
                text, is_error = "not run: call finish last, alone, when you are done", True
            elif use["name"] == "finish":
                args = use["input"] if isinstance(use["input"], dict) else {}
                message = str(args.get("commit_message") or "").strip()
                outcome, text, is_error = self._finish_with(
                    message or ctx.ticket.default_commit_message)
            else:
                ran = run_tool(ctx.sandbox, use["name"], use["input"], ctx.remaining())
                text, is_error = ran.text, ran.is_error
                ctx.transcript.write("tool", name=use["name"], input=use["input"],
                                     output=text, is_error=is_error)
            results.append({"type": "tool_result", "tool_use_id": use["id"],
                            "content": text, "is_error": is_error})
        if outcome is not None:
            return outcome
        self.messages.append({"role": "user", "content": results})
        return None

    def _finish(self, message: str) -> AgentResult | None:
        """The model ended its turn without tools: take it as done."""
        outcome, text, _ = self._finish_with(message)
        if outcome is None:
            self._say(text)
        return outcome

    def _finish_with(self, message: str) -> tuple[AgentResult | None, str, bool]:
        """Commit, check; a result when the ticket is over, else the feedback to send."""
        ctx = self.ctx
        ctx.commit(message)
        checked = ctx.check()
        ctx.transcript.write("check", ok=checked.ok, reason=checked.reason,
                             output=checked.output[-4000:])
        if checked.ok:
            return self.result(True, checked=True), "checks passed", False
        if self.fix_loops >= ctx.ticket.max_fix_loops:
            return (self.result(False, f"{checked.reason} after {self.fix_loops} fix loops",
                                checked=True), "", True)
        self.fix_loops += 1
        feedback = (f"The ticket's checks failed: {checked.reason}.\n{checked.output[-8000:]}\n"
                    "Fix the problem, then call finish again.")
        return None, feedback, True

    def _say(self, text: str) -> None:
        self.messages.append({"role": "user", "content": text})
