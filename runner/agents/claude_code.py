"""The claude-code agent: the real Claude Code binary, headless, inside the worker's container.

The binary is mounted read-only at CLAUDE_BINARY; it reaches the API through the runner's
gateway (ANTHROPIC_BASE_URL and a placeholder key are in the sandbox's environment, never
set here). When the ticket's checks fail, the same session goes on (`--resume`) with their
output, up to max_fix_loops. The gateway meters usage into the ledger; Claude Code's own
count is only compared with it.
"""

from __future__ import annotations

import time
from dataclasses import asdict

from runner.agents.base import AgentContext, AgentResult
from runner.agents.claude_stream import RunState, StreamReader, failure_text
from runner.records import CheckResult, Usage
from runner.sandbox import CLAUDE_BINARY, WORKSPACE, ExecResult
from runner.text import last_line, one_line

CONFIG_DIR = "/tmp/.claude"        # on the container's tmpfs, like HOME: nothing persists
FEEDBACK_CHARS = 8000              # of the check output sent back into the session
# Headless and quiet: permissions are bypassed (the container is the sandbox; as root it
# wants IS_SANDBOX=1), and no update check, telemetry or error report tries to leave.
ENV = {
    "HOME": "/tmp",
    "CLAUDE_CONFIG_DIR": CONFIG_DIR,
    "IS_SANDBOX": "1",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_AUTOUPDATER": "1",
    "DISABLE_TELEMETRY": "1",
    "DISABLE_ERROR_REPORTING": "1",
    "DISABLE_BUG_COMMAND": "1",
}


def system_prompt(ctx: AgentContext) -> str:
    """Appended to Claude Code's own system prompt; the `Ticket:` line names the ticket."""
    ticket = ctx.ticket
    paths = ", ".join(ticket.paths) if ticket.paths else "any file"
    checks = "; ".join(f"`{c}`" for c in ticket.checks) or "none"
    return (f"You are a worker of runner doing one ticket in your own sandbox.\n"
            f"Ticket: {ticket.id} — {ticket.display_title}\n"
            f"Your clone of the repository is {WORKSPACE} (the current directory), on its "
            f"own branch.\n"
            f"Files you may change: {paths}. Changes elsewhere fail the ticket.\n"
            f"Leave committing to runner: when you end, it commits your changes and runs "
            f"the ticket's checks ({checks}). If they fail, this session goes on with their "
            f"output.")


def claude_argv(ctx: AgentContext, prompt: str, *, max_turns: int,
                session: str = "") -> list[str]:
    resume = ["--resume", session] if session else []
    # `--` before the prompt: a prompt that starts with "-" is not an option.
    return [CLAUDE_BINARY, "-p", "--append-system-prompt", system_prompt(ctx),
            "--dangerously-skip-permissions", "--model", ctx.phase.model_for(ctx.ticket),
            "--max-turns", str(max_turns), "--output-format", "stream-json", "--verbose",
            *resume, "--", prompt]


def feedback(checked: CheckResult) -> str:
    return (f"The ticket's checks failed: {checked.reason}.\n"
            f"{checked.output[-FEEDBACK_CHARS:]}\n"
            "Fix it. When you end, runner commits and runs the checks again.")


class ClaudeCodeAgent:
    def run(self, ctx: AgentContext) -> AgentResult:
        return _Session(ctx).run()


class _Session:
    def __init__(self, ctx: AgentContext) -> None:
        self.ctx = ctx
        self.session = ""
        self.turns = self.retries = self.fix_loops = 0

    def result(self, ok: bool, reason: str = "", checked: bool = False) -> AgentResult:
        return AgentResult(ok=ok, reason=reason, checked=checked, fix_loops=self.fix_loops,
                           retries=self.retries, turns=self.turns)

    def run(self) -> AgentResult:
        ctx, ticket = self.ctx, self.ctx.ticket
        prompt = ticket.prompt or ""
        while True:
            if stop := self._limit_reached():
                return self.result(False, stop)
            if failed := self._claude(prompt):
                return self.result(False, failed)
            ctx.commit(ticket.default_commit_message)
            checked = ctx.check()
            ctx.transcript.write("check", ok=checked.ok, reason=checked.reason,
                                 output=checked.output[-4000:])
            if checked.ok:
                return self.result(True, checked=True)
            if self.fix_loops >= ticket.max_fix_loops:
                return self.result(False, f"{checked.reason} after {self.fix_loops} fix loops",
                                   checked=True)
            if not self.session:
                return self.result(False, f"{checked.reason}; Claude Code gave no session id "
                                   "to resume for a fix loop", checked=True)
            self.fix_loops += 1
            prompt = feedback(checked)

    def _limit_reached(self) -> str | None:
        ctx = self.ctx
        if ctx.cancelled.is_set():
            return "the run was interrupted"
        if ctx.sandbox.stopped_for:
            return ctx.sandbox.stopped_for
        if self.turns >= ctx.ticket.max_turns:
            return f"reached max_turns ({ctx.ticket.max_turns}) without finishing"
        if ctx.ledger.budget_reached():
            return f"the phase budget of ${ctx.ledger.budget_usd:g} is spent"
        used = ctx.ledger.ticket(ctx.ticket.id).usage.tokens
        if used > ctx.ticket.max_tokens:
            return (f"token budget exceeded: {used} tokens used of max_tokens "
                    f"{ctx.ticket.max_tokens}")
        if time.monotonic() >= ctx.deadline:
            return f"timed out after {ctx.ticket.timeout:g}s"
        return None

    def _claude(self, prompt: str) -> str:
        """One run of Claude Code (a resume once there is a session); why it failed, or ""."""
        ctx = self.ctx
        state = RunState()
        left = ctx.ticket.max_turns - self.turns
        ctx.transcript.write("claude-start", model=ctx.phase.model_for(ctx.ticket),
                             max_turns=left, resume=self.session or None,
                             prompt=prompt[:4000])
        before = ctx.ledger.ticket(ctx.ticket.id).usage
        ran = ctx.sandbox.exec(claude_argv(ctx, prompt, max_turns=left, session=self.session),
                               timeout=ctx.remaining(),
                               on_output=StreamReader(ctx.transcript, ctx.on_output, state),
                               env=ENV)
        self.session = state.session_id or self.session
        self.retries += state.retries
        outcome = state.result or {}
        turns = outcome.get("num_turns")
        self.turns += turns if isinstance(turns, int) and turns > 0 else 1
        self._cross_check(outcome, before)
        return self._failure(ran, state)

    def _failure(self, ran: ExecResult, state: RunState) -> str:
        ctx = self.ctx
        if ran.stopped:
            return ran.stopped
        if ctx.cancelled.is_set():
            return "the run was interrupted"
        if ran.timed_out:
            return f"timed out after {ctx.ticket.timeout:g}s"
        outcome = state.result
        if outcome is not None and outcome.get("is_error"):
            return f"Claude Code: {failure_text(outcome)}"
        if ran.exit_code != 0:
            why = last_line(ran.output) or "no output"
            return f"Claude Code exited with {ran.exit_code}: {one_line(why)[:300]}"
        if outcome is None:
            return "Claude Code ended without a result event"
        return ""

    def _cross_check(self, outcome: dict[str, object], before: Usage) -> None:
        """Claude Code's own usage against what the gateway metered for this run; a
        difference is noted, never accounted (the gateway's count is the truth)."""
        usage = outcome.get("usage")
        if not isinstance(usage, dict):
            return
        claimed = Usage(input=_int(usage.get("input_tokens")),
                        output=_int(usage.get("output_tokens")),
                        cache_write=_int(usage.get("cache_creation_input_tokens")),
                        cache_read=_int(usage.get("cache_read_input_tokens")))
        after = self.ctx.ledger.ticket(self.ctx.ticket.id).usage
        metered = Usage(after.input - before.input, after.output - before.output,
                        after.cache_write - before.cache_write,
                        after.cache_read - before.cache_read)
        if metered != claimed:
            self.ctx.transcript.write(
                "usage-mismatch", claude_code=asdict(claimed), gateway=asdict(metered))


def _int(value: object) -> int:
    return value if isinstance(value, int) and value >= 0 else 0
