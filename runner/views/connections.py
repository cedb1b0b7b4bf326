"""What each ticket's workers reached through the gateway, from its transcript: one row per
host, port and verdict, for the report. Host names are the worker's choice: data."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Reached:
    host: str
    port: int
    allowed: bool
    reason: str = ""
    count: int = 0
    bytes_up: int = 0
    bytes_down: int = 0


def connections(transcript: Path) -> list[Reached]:
    rows: dict[tuple[str, int, bool], Reached] = {}
    for entry in _entries(transcript):
        if entry.get("kind") != "egress":
            continue
        try:
            key = (str(entry["host"]), int(entry["port"]), bool(entry["allowed"]))
        except (KeyError, TypeError, ValueError):
            continue
        row = rows.setdefault(key, Reached(*key, reason=str(entry.get("reason") or "")))
        row.count += 1
        row.bytes_up += int(entry.get("bytes_up") or 0)
        row.bytes_down += int(entry.get("bytes_down") or 0)
    return sorted(rows.values(), key=lambda r: (r.allowed, r.host, r.port))


def _entries(path: Path) -> Iterator[dict]:
    if not path.is_file():
        return
    with path.open(encoding="utf-8", errors="replace") as lines:
        for line in lines:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:     # a line cut short by a killed runner
                continue
            if isinstance(entry, dict):
                yield entry
