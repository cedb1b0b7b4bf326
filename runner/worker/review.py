"""The optional review gate: a model reads a ticket's diff against the ticket's text and
answers approve or request_changes, with reasons (structured output through a forced tool).
Request-changes goes back to the worker as a fix loop, like a failing check."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import anthropic
from tenacity import RetryCallState

from runner.agents import api_message, create_message, cut
from runner.phase import Ticket
from runner.records import Usage

VERDICT_TOOL = {
    "name": "verdict",
    "description": "Your verdict on the change.",
    "input_schema": {"type": "object", "properties": {
        "verdict": {"type": "string", "enum": ["approve", "request_changes"]},
        "reasons": {"type": "array", "items": {"type": "string"}}},
        "required": ["verdict", "reasons"]},
}


@dataclass(frozen=True)
class Verdict:
    approve: bool
    reasons: tuple[str, ...]

    def __str__(self) -> str:
        word = "approve" if self.approve else "request_changes"
        return f"{word}: {'; '.join(self.reasons)}" if self.reasons else word


def review_change(*, ticket: Ticket, diff: str, model: str, deadline: float,
                  cancelled: threading.Event, account: Any) -> Verdict:
    """Ask ``model`` to review ``diff``; an API failure is a request for changes saying so."""
    system = (f"You review one ticket's change for runner, a tool that runs coding tickets.\n"
              f"Review of ticket: {ticket.id} — {ticket.display_title}\n"
              "Approve when the diff does what the ticket asks and nothing else; otherwise "
              "request changes and say what to change. Answer with the verdict tool.")
    task = ticket.prompt or ticket.run or ticket.display_title
    content = f"The ticket:\n{task}\n\nThe change:\n{cut(diff, 60_000)}"
    try:
        response = create_message(
            anthropic.Anthropic(max_retries=0), deadline=deadline, cancelled=cancelled,
            on_retry=_ignore, model=model, system=system, max_tokens=1024,
            tools=[VERDICT_TOOL], tool_choice={"type": "tool", "name": "verdict"},
            messages=[{"role": "user", "content": content}])
    except anthropic.APIStatusError as e:
        return Verdict(False, (f"the review could not be made: {api_message(e)}",))
    except anthropic.APIConnectionError as e:
        return Verdict(False, (f"the review could not be made: {e}",))
    account(Usage.from_api(response.usage), model)
    for block in response.content:
        if block.type == "tool_use" and isinstance(block.input, dict):
            reasons = tuple(str(r) for r in block.input.get("reasons") or ())
            return Verdict(block.input.get("verdict") == "approve", reasons)
    return Verdict(False, ("the reviewer gave no verdict",))


def _ignore(state: RetryCallState) -> None:
    pass
