"""Gates the lead applies to a collected ticket before integrating it."""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache


@lru_cache(maxsize=256)
def _glob(pattern: str) -> re.Pattern[str]:
    """A path glob: ``*`` and ``?`` stay inside one directory, ``**`` crosses directories;
    a pattern without wildcards (``docs``, ``docs/``) also covers everything below it."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    if any(c in pattern for c in "*?"):
        return re.compile(out)
    return re.compile(out.rstrip("/") + "(?:/.*)?")


def matches(path: str, patterns: Iterable[str]) -> bool:
    return any(_glob(p.removeprefix("./")).fullmatch(path) for p in patterns)


def outside_paths(changed: Iterable[str], paths: list[str]) -> list[str]:
    """Changed files that the ticket's ``paths`` do not allow (none when paths is empty)."""
    if not paths:
        return []
    return [f for f in changed if not matches(f, paths)]
