"""Path globs for `paths` and `protected`: checked when the phase file is read, compiled for
the gates.

``*`` and ``?`` stay inside one directory, ``**`` crosses directories, ``[abc]`` / ``[a-z]`` /
``[!abc]`` match one character of a class (never ``/``; ``[[]`` is a literal ``[``), and a
pattern without wildcards (``docs``, ``docs/``) also covers everything below it. Patterns are
relative to the repo's top level, as git names files.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

WILDCARDS = "*?["


def check_glob(pattern: str) -> str:
    """``pattern`` if it is a glob that can match a file in the repo; else ValueError saying
    what is wrong and what to write instead (the phase file's validators use it). Only a
    pattern with wildcards is compiled to be checked: a phase may name thousands of paths."""
    if any(c in pattern for c in WILDCARDS):
        compile_glob(pattern)
    else:
        _checked_path(pattern)
    return pattern


@lru_cache(maxsize=256)
def compile_glob(pattern: str) -> re.Pattern[str]:
    """The regex for ``pattern``, to fullmatch against a path exactly as git names it."""
    path = _checked_path(pattern)
    out, i = "", 0
    while i < len(path):
        if path.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif path.startswith("**", i):
            out, i = out + ".*", i + 2
        elif path[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif path[i] == "?":
            out, i = out + "[^/]", i + 1
        elif path[i] == "[":
            regex, i = _char_class(pattern, path, i)
            out += regex
        else:
            out, i = out + re.escape(path[i]), i + 1
    if not any(c in path for c in WILDCARDS):
        out = out.rstrip("/") + "(?:/.*)?"
    # DOTALL: a file name may hold a newline, and `.*` must still cover it ([^/] does).
    return re.compile(out, re.DOTALL)


def matches(path: str, patterns: Iterable[str]) -> bool:
    return any(compile_glob(p).fullmatch(path) for p in patterns)


def _checked_path(pattern: str) -> str:
    """The pattern without a leading ``./``, or ValueError if no file path could match it."""
    if "\0" in pattern:
        raise ValueError(f"{pattern!r} contains a NUL character, which no file name can; "
                         "remove it")
    path = pattern.removeprefix("./")
    if not path:
        raise ValueError(f"{pattern!r} is an empty pattern; name files relative to the repo's "
                         "top level, e.g. 'src/**' (or '**' for every file)")
    if path.startswith("/"):
        raise ValueError(f"{pattern!r} is an absolute path; patterns are relative to the "
                         f"repo's top level: write {path.lstrip('/') or '**'!r}")
    segments = path.removesuffix("/").split("/")
    if ".." in segments:
        raise ValueError(f"{pattern!r} goes above the repo's top level with '..'; patterns "
                         "name files inside the repo, relative to its top level")
    if any(s in ("", ".") for s in segments):
        raise ValueError(f"{pattern!r} has an empty or '.' segment, which no file path has; "
                         "write it without ('a/b', not 'a//b' or 'a/./b')")
    return path


def _char_class(pattern: str, path: str, start: int) -> tuple[str, int]:
    """The regex for the class that opens at ``path[start]`` and the index after it. As in
    the shell: ``!`` (or ``^``) first negates, a ``]`` first is a member."""
    i = start + 1
    negate = i < len(path) and path[i] in "!^"
    i += negate
    first = i
    if i < len(path) and path[i] == "]":
        i += 1
    end = path.find("]", i)
    if end < 0:
        raise ValueError(f"{pattern!r} opens a character class with '[' that no ']' closes; "
                         "close it, or write '[[]' for a literal '['")
    members = path[first:end]
    if "/" in members:
        raise ValueError(f"{pattern!r} has '/' in the character class [{path[start + 1:end]}]; "
                         "a class matches one character of a name, never '/'")
    # '-' stays a range operator; every other member is literal in the regex.
    body = "".join(c if c == "-" else re.escape(c) for c in members)
    regex = f"(?!/)[{'^' if negate else ''}{body}]"
    try:
        re.compile(regex)
    except re.error as e:
        raise ValueError(f"{pattern!r} has a bad character class [{path[start + 1:end]}] "
                         f"({e.msg}); write ranges low to high, like [a-z]") from e
    return regex, end + 1
