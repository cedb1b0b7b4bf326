"""Docker's image reference grammar (distribution/reference), checked when a phase is read.

An engine refuses what this refuses ("invalid reference format") only once a run asks it;
checking here makes a bad ``image:``, ``--image`` or ``RUNNER_IMAGE`` exit 2 before that.

    reference := name [":" tag] ["@" digest]
    name      := [domain "/"] path-component ("/" path-component)*
                 (at most 255 characters as the engine spells it: docker.io/library/x)
    domain    := host [":" port]
"""

from __future__ import annotations

import re

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|-+)"
_PATH = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*"     # no [IPv6] host: engines before 2023 refuse it
_NAME = rf"(?:{_HOST}(?::[0-9]+)?/)?{_PATH}(?:/{_PATH})*"
_REFERENCE = re.compile(rf"(?P<name>{_NAME})(?::(?P<tag>[\w][\w.-]{{0,127}}))?"
                        rf"(?:@(?P<algorithm>[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*)"
                        rf":(?P<hex>[0-9a-fA-F]{{32,}}))?", re.ASCII)
MAX_NAME = 255
# The digests an engine takes, and the length of each in hex.
DIGESTS = {"sha256": 64, "sha384": 96, "sha512": 128}


def check_image(value: str) -> str:
    """``value`` if Docker would take it as an image reference; else ValueError saying
    what is wrong."""
    shown = repr(value) if len(value) <= 60 else repr(value[:60]) + "…"
    if len(value) > 2 * MAX_NAME:   # before the regex: nothing that long can be one
        raise ValueError(f"{shown} is longer than any image reference can be")
    found = _REFERENCE.fullmatch(value)
    if not found:
        hint = (" (a repository name is lower case)" if value.lower() != value
                and _REFERENCE.fullmatch(value.lower()) else "")
        raise ValueError(f"{shown} is not an image reference{hint}; write it like "
                         "runner-worker:latest or registry.example:5000/team/image:1.2")
    if len(_normalized(found["name"])) > MAX_NAME:
        raise ValueError(f"{shown}: an image name is at most {MAX_NAME} characters")
    algorithm = found["algorithm"]
    if algorithm and DIGESTS.get(algorithm) != len(found["hex"]):
        raise ValueError(f"{shown}: a digest is sha256: and 64 hex digits (or sha384: 96, "
                         "sha512: 128)")
    return value


def _normalized(name: str) -> str:
    """``name`` with the registry an engine gives it when it has none (``x`` is
    ``docker.io/library/x``): the engine's length limit is on that."""
    first, slash, _ = name.partition("/")
    if slash and (any(c in first for c in ".:") or first == "localhost"
                  or first.lower() != first):
        return name
    return "docker.io/" + ("" if slash else "library/") + name
