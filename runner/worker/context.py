"""What every worker of one run shares (RunContext), and the run's gateway around it."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from runner.host import HostRepo, RunObjects, ticket_ref
from runner.phase import Phase
from runner.records import EventSink, Ledger, Notice
from runner.sandbox import Checkout, SandboxProvider
from runner.text import one_line
from runner.worker.authorship import Authorship
from runner.worker.gatewayenv import GATEWAY_URL, home_files

if TYPE_CHECKING:   # aiohttp is imported only by a run that starts a gateway
    from runner.gateway import Gateway, Mirrors


@dataclass(frozen=True)
class RunContext:
    """What every worker of one run shares."""

    run_id: str
    phase: Phase
    host: HostRepo
    root: Path                   # the run's directory, runner-owned (never mounted)
    provider: SandboxProvider
    sink: EventSink
    objects: RunObjects          # what its workers may read (mounted, or sent as a bundle)
    ledger: Ledger = field(default_factory=lambda: Ledger(prices={}))
    cancelled: threading.Event = field(default_factory=threading.Event)
    keep: bool = False
    user: str = f"{os.getuid()}:{os.getgid()}"   # workers run as the host user
    authorship: Authorship = Authorship()        # who its commits are by
    gateway: Gateway | None = None               # the workers' way out, when the phase has one
    claude: Path | None = None                   # the Claude Code binary claude-code tickets run
    # What every worker's private home starts with, copied from the dependency cache: the
    # base's Gradle wrapper distribution.
    home_copies: tuple[tuple[str, Path], ...] = ()

    def checkout(self, name: str, start: str, *, place: str = "",
                 fresh: bool = True) -> Checkout:
        """The clone ``name`` (a ticket, a probe) works in, on its branch, from ``start``."""
        return Checkout(name=name, branch=self.branch(name), start=start, history=self.objects,
                        place=place, fresh=fresh,
                        home_files=home_files(gateway=self.gateway is not None,
                                              upstreams=self.mirrored),
                        home_copies=self.home_copies)

    @property
    def mirrored(self) -> dict[str, str]:
        """The ecosystems whose tools the workers find the cache's mirror for, each with
        its upstream."""
        mirrors = self.gateway.mirrors if self.gateway is not None else None
        return dict(mirrors.upstreams) if mirrors is not None else {}

    def ticket_ref(self, ticket_id: str) -> str:
        return ticket_ref(self.run_id, ticket_id)

    def branch(self, ticket_id: str) -> str:
        return f"runner/{self.run_id}/{ticket_id}"

    def container_name(self, ticket_id: str) -> str:
        return f"runner-{self.run_id}-{ticket_id}"


@contextmanager
def gateway_for(ctx: RunContext) -> Iterator[RunContext]:
    """The run's context with its gateway serving, when the phase needs one: the way out
    of every sandbox of the run (probes, tickets, salvage, phase checks)."""
    if not ctx.phase.needs_gateway:
        yield ctx
        return
    from runner.gateway import Gateway

    mirrors = mirrors_for(ctx.phase)
    if mirrors is not None and "go" in mirrors.upstreams:
        mirrors = replace(mirrors, go_sums=_base_go_sums(ctx))
    with Gateway(ctx.root / "gateway", ledger=ctx.ledger, egress=ctx.phase.egress,
                 mirrors=mirrors) as gateway:
        yield replace(ctx, gateway=gateway, home_copies=_wrapper_distribution(ctx, gateway))


def _wrapper_distribution(ctx: RunContext, gateway: Gateway) -> tuple[tuple[str, Path], ...]:
    """The base's Gradle wrapper distribution, from the cache, for every worker's home;
    none when the phase does not mirror it, the base has no wrapper, or it cannot be had
    (said: the wrapper then downloads it itself, through egress:)."""
    cache = ctx.phase.cache
    base = ctx.host.resolve(ctx.phase.base)
    if cache is None or "gradle" not in cache.upstreams or base is None:
        return ()
    from runner.worker.gradlewrapper import PROPERTIES, distribution

    properties = ctx.host.file_at(base, PROPERTIES)
    wanted = distribution(properties) if properties is not None else None
    if wanted is None:
        return ()
    try:
        stored = gateway.distribution(wanted.url, wanted.sha256)
    except RuntimeError as e:
        ctx.sink.emit(Notice(f"cache: the Gradle wrapper's distribution {wanted.url} is not "
                             f"in the cache and could not be fetched ({one_line(str(e))}): "
                             "each worker's wrapper downloads it itself", level="warning"))
        return ()
    ctx.sink.emit(Notice(f"cache: the Gradle wrapper's distribution {wanted.url} "
                         "goes into every worker's Gradle home"))
    return ((wanted.home_path, stored),)


def _base_go_sums(ctx: RunContext) -> dict[str, str]:
    """The hashes the base commit's go.sum files record (the user's, as the run found them:
    what the Go mirror checks a module by before any checksum database)."""
    from runner.gateway import sums_in

    base = ctx.host.resolve(ctx.phase.base)
    sums: dict[str, str] = {}
    for path in ctx.host.paths_named(base, "go.sum") if base else ():
        sums |= sums_in(ctx.host.file_at(base, path, limit=64 << 20) or "")
    return sums


def mirrors_for(phase: Phase, *, open_store: bool = True) -> Mirrors | None:
    """The phase's dependency mirrors, each upstream named (InputError when one cannot be),
    the store opened (made, when new); None when the phase has no cache."""
    if phase.cache is None:
        return None
    from runner.gateway import Mirrors, default_cache_dir, go_sumdb_for, store_at, upstream_for

    folder = phase.cache.dir or default_cache_dir()
    if open_store:
        store_at(folder)
    return Mirrors(upstreams={eco: upstream_for(eco, url)
                              for eco, url in phase.cache.upstreams.items()},
                   store=folder, max_bytes=phase.cache.max_bytes, served_at=GATEWAY_URL,
                   go_sumdb=go_sumdb_for(phase.cache.go_sumdb)
                   if "go" in phase.cache.upstreams else None)
