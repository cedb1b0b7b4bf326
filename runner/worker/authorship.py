"""Who runner's commits are by, and the trailers that tie each one to its run and ticket.

The committer of every commit runner makes or integrates is the host repo's user (its
``user.name`` / ``user.email``, read once as the run starts). The author is the phase's
``author:``, or else the ticket by name with the host user's email. Integrated commits keep
their author and carry exactly the true ``Runner-Run`` / ``Runner-Ticket`` trailers: any a
worker wrote itself are dropped first (git's ``trailer.ifexists=replace`` replaces only one).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from runner.host import HostRepo
from runner.phase import Phase

RUN_TRAILER, TICKET_TRAILER = "Runner-Run", "Runner-Ticket"
# A line that claims to be one of our trailers: git matches keys case-insensitively and
# allows blanks before the separator (':' by default; '=' is the usual trailer.separators
# addition, so a user's `git log` could read that too).
_CLAIMED = re.compile(rf"(?i)^(?:{RUN_TRAILER}|{TICKET_TRAILER})[ \t]*[:=]")


@dataclass(frozen=True)
class Identity:
    name: str
    email: str

    def env(self, role: Literal["AUTHOR", "COMMITTER"]) -> dict[str, str]:
        return {f"GIT_{role}_NAME": self.name, f"GIT_{role}_EMAIL": self.email}


# When the host repo has no user: what runner committed as before it read one.
FALLBACK_COMMITTER = Identity("runner", "runner@localhost")


@dataclass(frozen=True)
class Authorship:
    committer: Identity = FALLBACK_COMMITTER
    author: Identity | None = None      # the phase's author:, for every ticket
    host_email: str | None = None       # the host user's, for a ticket's default author

    def author_for(self, ticket: str) -> Identity:
        if self.author is not None:
            return self.author
        return Identity(ticket, self.host_email or f"{ticket}@runner.local")

    def env(self, ticket: str) -> dict[str, str]:
        """The git identity of a ticket's worker."""
        return self.author_for(ticket).env("AUTHOR") | self.committer.env("COMMITTER")


def read_authorship(host: HostRepo, phase: Phase) -> Authorship:
    """The run's identities: the host repo's user (as git sees it there) and the phase's
    ``author:``."""
    name, email = host.config("user.name"), host.config("user.email")
    committer = Identity(name or FALLBACK_COMMITTER.name, email or FALLBACK_COMMITTER.email)
    author = Identity(phase.author.name, phase.author.email) if phase.author else None
    return Authorship(committer=committer, author=author, host_email=email)


def trailer_args(run_id: str, ticket: str) -> list[str]:
    """`git commit` options that add the run's trailers."""
    return ["--trailer", f"{RUN_TRAILER}: {run_id}", "--trailer", f"{TICKET_TRAILER}: {ticket}"]


def without_runner_trailers(message: str) -> str:
    """``message`` without any line claiming to be a Runner-* trailer (nor its continuation
    lines); the first line is the subject, never a trailer, and stays."""
    lines = message.split("\n")
    kept, dropping = lines[:1], False
    for line in lines[1:]:
        if _CLAIMED.match(line):
            dropping = True
        elif not (dropping and line[:1] in (" ", "\t")):
            dropping = False
            kept.append(line)
    return "\n".join(kept)
