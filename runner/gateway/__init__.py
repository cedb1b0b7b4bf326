"""The runner's gateway: a worker's only way out of its `network: none` container.

One unix socket per worker (so who speaks is known from the socket, never from what the
worker says), served by one asyncio loop in a daemon thread per run. On it: the Messages API
(forwarded with the real key, metered, budgets enforced), egress (CONNECT and absolute-form
http) to the phase's `egress:` entries only, and the dependency cache's mirrors (cache/).

This module stays light: aiohttp is imported when a Gateway starts, not when runner does.
"""

from __future__ import annotations

import itertools
import os
import shutil
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from runner.faces import lazy_names

from runner.gateway.calls import (DEFAULT_UPSTREAM, SOCKET_NAME, WHOAMI_PATH, ApiCall, Caller,
                                  Connection, Fetch)

if TYPE_CHECKING:
    from runner.gateway.cache import Mirrors
    from runner.gateway.server import GatewayLoop
    from runner.records import Ledger

__all__ = ["DEFAULT_UPSTREAM", "SOCKET_NAME", "WHOAMI_PATH", "ApiCall", "Caller",
           "Connection", "Fetch", "Gateway"]


class Gateway:
    def __init__(self, directory: Path, *, ledger: Ledger, egress: Sequence[str],
                 upstream: str | None = None, api_key: str | None = None,
                 mirrors: Mirrors | None = None) -> None:
        from runner.gateway.allowlist import Allowlist   # pure Python: bad entries fail here

        self.directory = Path(directory)
        self.ledger = ledger
        self.allowlist = Allowlist(egress)
        self.upstream = (upstream or os.environ.get("ANTHROPIC_BASE_URL")
                         or DEFAULT_UPSTREAM).rstrip("/")
        # Kept out of repr and messages; read once, here.
        self._api_key = api_key if api_key is not None else os.environ.get("ANTHROPIC_API_KEY")
        self.mirrors = mirrors
        self._loop: GatewayLoop | None = None
        self._names = itertools.count(1)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Gateway({str(self.directory)!r}, upstream={self.upstream!r})"

    def __enter__(self) -> Gateway:
        from runner.gateway.server import GatewayLoop

        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.directory.chmod(0o700)       # other host users stay out of every socket
        self._loop = GatewayLoop(ledger=self.ledger, allowlist=self.allowlist,
                                 upstream=self.upstream, api_key=self._api_key,
                                 mirrors=self.mirrors)
        self._loop.start()
        return self

    def __exit__(self, *exc: object) -> None:
        loop, self._loop = self._loop, None
        if loop is not None:
            loop.stop()
        for child in self.directory.glob("w[0-9]*"):
            shutil.rmtree(child, ignore_errors=True)
        try:
            self.directory.rmdir()
        except OSError:
            pass                          # not empty: not only ours

    def distribution(self, url: str, sha256: str | None) -> Path:
        """A Gradle wrapper's distribution through the dependency cache (its path in the
        store); RuntimeError saying why when it cannot be had."""
        if self._loop is None:
            raise RuntimeError("the gateway is not running: use it as a context manager")
        return self._loop.distribution(url, sha256)

    def serve(self, caller: Caller) -> AbstractContextManager[Path]:
        """A fresh directory under `directory` holding one socket, `gateway.sock`, served
        for `caller` until the context exits (then closed and removed). The caller mounts
        the DIRECTORY (read-only) into the worker."""
        return self._serve(caller)

    @contextmanager
    def _serve(self, caller: Caller) -> Iterator[Path]:
        loop = self._loop
        if loop is None:
            raise RuntimeError("the gateway is not running: use it as a context manager")
        while True:
            with self._lock:
                # Short and not the ticket id: ids can be long, and sun_path is not.
                path = self.directory / f"w{next(self._names)}"
            try:
                path.mkdir(mode=0o711)
                break
            except FileExistsError:
                continue                  # left by a gateway that did not get to clean up
        path.chmod(0o711)                 # the container's forwarder (uid 65534) traverses it
        try:
            served = loop.open(path, SOCKET_NAME, caller)
            try:
                yield path
            finally:
                loop.close(served)
        finally:
            shutil.rmtree(path, ignore_errors=True)


# What other packages import from here, by the module that holds it: each loaded when
# first asked for (runner/faces.py).
_EXPORTS = {
    "runner.gateway.allowlist": ("check_entry",),
    "runner.gateway.cache": ("Mirrors", "upstream_for"),
    "runner.gateway.cache.gomod": ("sums_in",),
    "runner.gateway.cache.store": ("default_cache_dir", "store_at"),
    "runner.gateway.cache.upstreams": ("go_sumdb_for",),
    "runner.gateway.sockets": ("connect_unix",),
}
__getattr__ = lazy_names(__name__, globals(), _EXPORTS)

if TYPE_CHECKING:
    from runner.gateway.allowlist import check_entry
    from runner.gateway.cache import Mirrors, upstream_for
    from runner.gateway.cache.gomod import sums_in
    from runner.gateway.cache.store import default_cache_dir, store_at
    from runner.gateway.cache.upstreams import go_sumdb_for
    from runner.gateway.sockets import connect_unix
