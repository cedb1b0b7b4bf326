"""Small text helpers shared by the lead's modules."""

from __future__ import annotations


def last_line(text: str) -> str:
    """The last non-blank line of a command's output, for one-line error reasons."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"
