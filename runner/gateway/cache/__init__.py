"""The dependency cache the gateway fills: a mirror per ecosystem on the worker's gateway
address (``/cache/<ecosystem>/…``), artifacts stored content-addressed on runner's machine
and verified against the hash their index publishes, index pages revalidated upstream on
every request (the last good one served when the upstream is gone). Only the gateway writes
the store; a worker can only ask for what an index names.

This module stays light (no aiohttp): the phase loader and `runner cache` use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from runner.gateway.cache.upstreams import ECOSYSTEMS, upstream_for

PREFIX = "/cache/"

__all__ = ["ECOSYSTEMS", "PREFIX", "Mirrors", "upstream_for"]


@dataclass(frozen=True)
class Mirrors:
    """What a run's gateway mirrors: each ecosystem's upstream, the store and its bound."""

    upstreams: dict[str, str]          # ecosystem -> base URL ending in "/"
    store: Path
    max_bytes: int
    served_at: str = field(default="")  # the gateway's URL as workers reach it (cargo's dl)
    go_sumdb: str | None = None         # the checksum database new Go modules are checked by
    # The base commit's go.sum lines: "<module> <version>[/go.mod]" -> h1 hash.
    go_sums: Mapping[str, str] = field(default_factory=dict)
