"""Sizes as people write them in a phase file and on the command line: 512m, 2g, 1.5k."""

from __future__ import annotations

import re

from runner.text import quoted

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def checked_size(value: str) -> str:
    if not re.fullmatch(r"(?i)\d+(\.\d+)?[bkmg]?", value):
        raise ValueError(f"{quoted(value)} is not a size; write it like 512m or 2g")
    return value


def size_in_bytes(size: str) -> int:
    found = re.fullmatch(r"(?i)(\d+(?:\.\d+)?)([bkmg]?)", size)
    assert found, size
    number, unit = found.groups()
    return int(float(number) * _UNITS[unit.lower()])
