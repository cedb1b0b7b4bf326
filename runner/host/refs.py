"""The refs a run keeps in the host repo, named in one place: refs/runner/<run-id>/…"""

from __future__ import annotations


def run_refs(run_id: str) -> str:
    """The prefix under which every ref of the run lives (ends in a slash)."""
    return f"refs/runner/{run_id}/"


def ticket_ref(run_id: str, ticket: str) -> str:
    """A ticket's raw commits: its latest attempt that committed anything."""
    return f"{run_refs(run_id)}{ticket}"


def attempt_ref(run_id: str, ticket: str, label: str) -> str:
    """An earlier attempt's commits (``1`` is the first run, kept when rerun 1 starts), or
    work found in a workspace (``interrupted``, ``cleaned``, ``before-resume``)."""
    return kept_beside(ticket_ref(run_id, ticket), label)


def kept_beside(ref: str, label: str) -> str:
    """Where a ticket ref's commits are kept under ``label`` once a later attempt of the
    ticket takes the ref over."""
    run, _, ticket = ref.rpartition("/")
    return f"{run}/attempts/{ticket}/{label}"


def integrated_ref(run_id: str) -> str:
    return f"{run_refs(run_id)}integrated"


def base_ref(run_id: str) -> str:
    return f"{run_refs(run_id)}base"


def candidate_ref(run_id: str) -> str:
    """The integrated result whose phase checks failed (target did not move)."""
    return f"{run_refs(run_id)}candidate"


def previous_target_ref(run_id: str) -> str:
    return f"{run_refs(run_id)}previous-target"
