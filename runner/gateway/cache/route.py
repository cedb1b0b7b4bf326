"""The mirrors' route: which ecosystem's handler serves ``/cache/<ecosystem>/…`` (a new
ecosystem is its own module and a line here)."""

from __future__ import annotations

from runner.gateway.cache import crates, gomod, maven, npm, pypi
from runner.gateway.cache.mirror import Handler

HANDLERS: dict[str, Handler] = {"pypi": pypi.handle, "crates": crates.handle,
                                "maven": maven.handle, "npm": npm.handle, "go": gomod.handle}
