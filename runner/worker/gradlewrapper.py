"""The Gradle wrapper's distribution, delivered from the dependency cache: where the wrapper
of the phase's base commit looks for it in a Gradle home, so that each worker's private home
starts with the zip there and the wrapper, finding it, verifies and unpacks it instead of
downloading it (through egress, every worker, every run).

Read from the base commit alone (the user's, as the run found it): the URL the gateway then
fetches is never one a worker wrote. The wrapper keeps a distribution at
``wrapper/dists/<name>/<hash>/<name>.zip``, the hash being the MD5 of the URL in base 36
(the wrapper's own PathAssembler); a distribution stored elsewhere (``PROJECT``) is left to
the wrapper.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

PROPERTIES = "gradle/wrapper/gradle-wrapper.properties"
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


@dataclass(frozen=True)
class Distribution:
    url: str
    sha256: str | None       # distributionSha256Sum, when the project pins it
    home_path: str           # where in a Gradle home the wrapper looks for the zip


def read_properties(text: str) -> dict[str, str]:
    """A Java .properties file's key=value lines, its escapes (\\: \\= \\\\) undone."""
    values = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#!":
            continue
        parts = re.split(r"(?<!\\)[=:]", line, maxsplit=1)
        key, value = parts[0].strip(), parts[1].strip() if len(parts) > 1 else ""
        values[_unescape(key)] = _unescape(value)
    return values


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: m.group(1), text)


def _base36(number: int) -> str:
    out = ""
    while number:
        number, digit = divmod(number, 36)
        out = _DIGITS[digit] + out
    return out or "0"


def distribution(properties: str) -> Distribution | None:
    """What the wrapper of these properties would download, and where it would keep it;
    None when it names no http(s) zip, or keeps it out of the Gradle home."""
    values = read_properties(properties)
    url = values.get("distributionUrl", "")
    name = url.rpartition("/")[2]
    if not re.fullmatch(r"https?://[^\s]+", url) or not re.fullmatch(r"[A-Za-z0-9._-]+\.zip", name):
        return None
    if values.get("zipStoreBase", "GRADLE_USER_HOME") != "GRADLE_USER_HOME" \
            or values.get("zipStorePath", "wrapper/dists") != "wrapper/dists":
        return None
    digest = _base36(int.from_bytes(hashlib.md5(url.encode()).digest(), "big"))
    pinned = values.get("distributionSha256Sum", "").lower() or None
    if pinned is not None and not re.fullmatch(r"[0-9a-f]{64}", pinned):
        pinned = None
    return Distribution(url=url, sha256=pinned,
                        home_path=f"wrapper/dists/{name.removesuffix('.zip')}/{digest}/{name}")
