"""`runner diff`: a ticket's change as git shows it, coloured as git colours a diff and
through the user's pager, as `git diff` would be; but a worker chose every byte of it, so
each line is made printable first (no escape of its reaches the terminal) and the colours
are runner's own. Streamed: a diff of any size goes through in bounded memory."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from runner.host import HostRepo, git, git_lines
from runner.text import printable

# git's default colours for a diff.
_BOLD, _CYAN, _RED, _GREEN, _RESET = "\x1b[1m", "\x1b[36m", "\x1b[31m", "\x1b[32m", "\x1b[m"
_META = ("diff --git ", "index ", "--- ", "+++ ", "new file mode ", "deleted file mode ",
         "old mode ", "new mode ", "similarity index ", "rename from ", "rename to ",
         "Binary files ")


def diff_lines(host: HostRepo, start: str, tip: str, *, stat: bool = False,
               colour: bool = False) -> Iterator[str]:
    """``start``..``tip`` as `git diff` shows it (``stat``: its --stat), line by line, each
    printable; coloured when ``colour``. The user's diff drivers are not run on it: which
    one applies is the worker's to say (its .gitattributes)."""
    for line in git_lines(host.top, "diff", "--no-color", "--no-ext-diff", "--no-textconv",
                          *(["--stat"] if stat else []), start, tip, "--"):
        line = printable(line)
        yield _coloured(line) if colour and not stat else line


def line_kind(line: str) -> str:
    """What a line of a diff is: meta (headers), hunk, add, del, or "" (context)."""
    if line.startswith(_META):
        return "meta"
    if line.startswith("@@"):
        return "hunk"
    return {"+": "add", "-": "del"}.get(line[:1], "")


def _coloured(line: str) -> str:
    kind = line_kind(line)
    if kind == "hunk":
        head, sep, rest = line.partition(" @@")
        return f"{_CYAN}{head}{sep}{_RESET}{rest}"
    colour = {"meta": _BOLD, "add": _GREEN, "del": _RED}.get(kind)
    return f"{colour}{line}{_RESET}" if colour else line


def wants_colour(host: HostRepo, out: TextIO) -> bool:
    """Whether git would colour a diff here: the user's color.diff / color.ui, and whether
    ``out`` is a terminal."""
    tty = "true" if out.isatty() else "false"
    proc = git(host.top, "config", "--get-colorbool", "color.diff", tty, check=False)
    return proc.stdout.strip() == "true"


def user_pager(host: HostRepo) -> str:
    """The pager git would use in the host repo (runner's own git calls set none)."""
    proc = subprocess.run(["git", "var", "GIT_PAGER"], cwd=host.top, capture_output=True,
                          text=True, stdin=subprocess.DEVNULL)
    return proc.stdout.strip() if proc.returncode == 0 else ""


@contextmanager
def paged(host: HostRepo, out: TextIO = sys.stdout) -> Iterator[TextIO]:
    """Where to write what a person reads page by page: the pager git would use (core.pager,
    GIT_PAGER, PAGER; LESS=FRX as git sets it), or ``out`` itself when it is no terminal."""
    pager = user_pager(host) if out.isatty() else ""
    if pager in ("", "cat"):
        yield out
        return
    env = {**os.environ, "LESS": os.environ.get("LESS", "FRX"), "LV": os.environ.get("LV", "-c")}
    proc = subprocess.Popen(pager, shell=True, stdin=subprocess.PIPE, env=env, text=True,
                            encoding="utf-8", errors="replace")
    assert proc.stdin is not None
    try:
        yield proc.stdin
    except BrokenPipeError:       # the person quit the pager before the end: fine
        pass
    finally:
        try:
            proc.stdin.close()
        except BrokenPipeError:
            pass
        proc.wait()
