"""Small text helpers shared by the lead's modules."""

from __future__ import annotations

import re

# Terminal escape sequences (CSI, OSC) and other control characters but tab.
_CONTROL = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]"            # CSI: colours, cursor moves
                      r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC: titles, links
                      r"|[\x00-\x08\x0b-\x1f\x7f]")


def printable(text: str) -> str:
    """Worker output made safe to show on a terminal: no escapes, no control characters."""
    return _CONTROL.sub("", text)


def last_line(text: str) -> str:
    """The last non-blank line of a command's output, for one-line error reasons."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"
