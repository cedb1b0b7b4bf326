"""Which of a worker's environment variables must not be there: the self-test's judgement.

The probe reports each variable's name and the sha256 of its value, never the value. A
variable is refused when its name looks like a secret's, when its value is that of a host
variable whose name does, or when it holds a host variable's value and neither the worker
spec nor the image sets it (the host's environment leaked through). Settings images bake in
(``LANG``, ``JAVA_HOME``, ``PYTHONDONTWRITEBYTECODE``) pass, even where the host has them too.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from runner.worker import PLACEHOLDER_KEY

# Parts of a name that mean a secret wherever they appear (PGPASSWORD, OPENAI_APIKEY) ...
SECRET_PARTS = ("SECRET", "PASSWORD", "PASSWD", "PASSPHRASE", "CREDENTIAL", "APIKEY")
# ... and words that do only as a whole word, so KEYBOARD, TOKENIZERS_PARALLELISM and
# GIT_AUTHOR_NAME are ordinary.
SECRET_WORDS = frozenset({"KEY", "TOKEN", "AUTH"})
# A KEY beside these is a public key's fingerprint (python's official images set GPG_KEY).
PUBLIC_KEY_WORDS = frozenset({"GPG", "PGP"})
# git's configuration by environment names a setting (safe.directory, say) in each
# GIT_CONFIG_KEY_<n>; what could be secret is its GIT_CONFIG_VALUE_<n>.
_GIT_CONFIG_KEY = re.compile(r"GIT_CONFIG_KEY_[0-9]+")
# Set by the container runtime or the shell itself; the host has them too, often with the
# same value (PATH, TERM), which says nothing about a leak.
RUNTIME_ENV = frozenset({"HOSTNAME", "HOME", "PATH", "TERM", "PWD", "OLDPWD", "SHLVL", "_"})
# Shorter host values (1, true, a port) are flags, not secrets; an ordinary setting would
# share them by chance.
MIN_SECRET_LENGTH = 8


def looks_secret(name: str) -> bool:
    upper = name.upper()
    if _GIT_CONFIG_KEY.fullmatch(upper):
        return False
    if any(part in upper for part in SECRET_PARTS):
        return True
    words = {word.removesuffix("S") for word in re.split(r"[^A-Z0-9]+", upper)}
    if words & PUBLIC_KEY_WORDS:
        words.discard("KEY")
    return bool(words & SECRET_WORDS)


def digest(value: str) -> str:
    """The sha256 of a value's bytes, as ``sha256sum`` prints it in the probe."""
    return hashlib.sha256(os.fsencode(value)).hexdigest()


@dataclass(frozen=True)
class GivenEnv:
    """What runner gave a worker: its spec's variables, and those its image sets."""

    spec: Mapping[str, str]
    image: str
    image_env: Mapping[str, str]

    def origin(self, name: str, value_digest: str) -> str | None:
        """Where the worker's ``name`` came from, or None: from none of them."""
        if name in self.spec:
            return "the worker spec"
        if name in self.image_env and digest(self.image_env[name]) == value_digest:
            return f"the image {self.image}"
        if name in RUNTIME_ENV:
            return "the container runtime"
        return None


def refused_env(seen: Mapping[str, str], given: GivenEnv, host: Mapping[str, str]) -> list[str]:
    """Why each refused variable of ``seen`` (name -> digest of its value) is refused."""
    host_secrets = {digest(value): name for name, value in host.items()
                    if looks_secret(name) and len(value) >= MIN_SECRET_LENGTH}
    refused = []
    harmless = digest(PLACEHOLDER_KEY)     # what a worker holds instead of the API key
    for name, value_digest in sorted(seen.items()):
        if value_digest == harmless and name in given.spec:
            continue
        origin = given.origin(name, value_digest)
        where = f"{name} (from {origin or 'neither the worker spec nor the image'})"
        if looks_secret(name):
            refused.append(f"{where} looks like a secret")
        elif value_digest in host_secrets:
            refused.append(f"{where} has the value of the host's {host_secrets[value_digest]}")
        elif origin is None and name in host and digest(host[name]) == value_digest:
            refused.append(f"{where} has the host's value")
    return refused
