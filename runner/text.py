"""Small text helpers shared by the lead's modules."""

from __future__ import annotations

import re
from pathlib import Path

# Terminal escape sequences (CSI, OSC) and other control characters but tab and newline:
# C0, DEL, C1 (\x9b is a CSI of its own on some terminals), and the bidirectional overrides
# that make a line read otherwise than its bytes.
_CONTROL = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]"            # CSI: colours, cursor moves
                      r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC: titles, links
                      r"|[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
# Bytes git or a log gave us that are not UTF-8 (kept as surrogates): shown as U+FFFD.
_SURROGATE = re.compile("[\ud800-\udfff]")


# Characters XML 1.0 has no place for even escaped (printable() takes the others).
_NOT_XML = re.compile("[\ufffe\uffff]")


def valid_unicode(text: str) -> str:
    """``text`` with what no UTF-8 stream can carry (bytes that were not UTF-8, kept as
    surrogates) as U+FFFD."""
    return _SURROGATE.sub("\ufffd", text)


def printable(text: str) -> str:
    """Worker output made safe to show on a terminal: no escapes, no control characters,
    nothing a stream cannot encode."""
    return valid_unicode(_CONTROL.sub("", text))


def xml_text(text: str) -> str:
    """``text`` as XML may hold it (ElementTree escapes markup, not these)."""
    return _NOT_XML.sub("", printable(text))


def tail(path: Path, limit: int = 32_000) -> str:
    """The last ``limit`` bytes of a log file, from a line start, said to be cut when
    they are; empty when there is no file."""
    try:
        with path.open("rb") as f:
            size = f.seek(0, 2)
            f.seek(max(0, size - limit))
            data = f.read()
    except FileNotFoundError:
        return ""
    if size <= limit:
        return data.decode("utf-8", "replace")
    data = data[data.find(b"\n") + 1:]
    return f"[… the first {size - len(data):,} bytes are cut …]\n" + data.decode("utf-8",
                                                                             "replace")


def quoted(value: object, limit: int = 60) -> str:
    """``value`` as a message quotes it, cut short: a user's value may be a megabyte long."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def one_line(text: str) -> str:
    """``text`` made printable and kept on one line: a line of a plain log or of a table in a
    CI log cannot be split into lines that look like runner's own."""
    return printable(text).replace("\r\n", " ⏎ ").replace("\n", " ⏎ ").replace("\t", " ")


def last_line(text: str) -> str:
    """The last non-blank line of a command's output, for one-line error reasons."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"
