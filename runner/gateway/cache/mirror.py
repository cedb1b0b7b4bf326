"""The mirrors' common ground: requests under /cache/ go to their ecosystem's handler (the
table in route.py), which asks this Mirror for index pages (fetched upstream every time, the
last good one kept) and artifacts (fetched upstream once, stored by the hash their index
published, single-flight: workers asking at once share one download, and so do the
gateways of other tickets and runs, by the store's lock on the artifact)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from aiohttp import web

from runner.gateway.cache import PREFIX, Mirrors
from runner.gateway.cache.store import DigestOfFile, HashMismatch, Store, store_at
from runner.gateway.calls import Caller, Fetch
from runner.gateway.scrub import ScrubbedResponse, Scrubber

T = TypeVar("T")
CHUNK = 256 << 10
LOCK_POLL = 0.05                  # s between tries of an artifact another gateway fetches
MAX_INDEX = 64 << 20              # an index page past this is not one we keep
SAID = "runner gateway: cache: "       # how its refusals begin, for the worker


class Unavailable(Exception):
    """What a worker asked for cannot be had: said to it (and in its log) as the reason."""

    def __init__(self, reason: str, status: int = 502) -> None:
        super().__init__(reason)
        self.reason, self.status = reason, status


@dataclass
class Page:
    """An index page as the upstream sent it."""

    body: bytes
    content_type: str
    url: str                      # where it came from (links in it are relative to this)
    fresh: bool                   # fetched now; False: the last good one, upstream gone
    fetched: int                  # bytes that came from upstream for it now
    stale_reason: str = ""


@dataclass
class Served:
    """What one request was answered with, for its Fetch record."""

    response: web.StreamResponse
    what: str
    source: str                   # cache | upstream | stale
    upstream_bytes: int = 0
    reason: str = ""
    artifact: bool = True         # False: an index page, a checksum, config

    @classmethod
    def page(cls, response: web.StreamResponse, what: str, page: Page) -> Served:
        return cls(response, what, "upstream" if page.fresh else "stale", page.fetched,
                   page.stale_reason, artifact=False)


# An ecosystem's answer to a request: (mirror, request, path after its prefix, scrubber).
Handler = Callable[["Mirror", web.BaseRequest, str, Scrubber], Awaitable[Served]]


class Mirror:
    def __init__(self, mirrors: Mirrors, session: aiohttp.ClientSession,
                 report: Callable[[Callable[[Fetch], None], Fetch], None],
                 handlers: Mapping[str, Handler]) -> None:
        self.mirrors = mirrors
        self.handlers = handlers
        self.upstreams = mirrors.upstreams
        self.store: Store = store_at(mirrors.store)
        self.session = session
        self._report = report
        self._inflight: dict[str, asyncio.Future[Any]] = {}
        self._size = self.store.usage().bytes

    # -- the route ------------------------------------------------------------------------

    def own_path(self, target: str) -> str | None:
        """The mirror path a request is for: origin-form ``/cache/…``, or the same asked
        of the gateway's own address as a proxy (JVM tools send every request to the
        proxy, and a worker's 127.0.0.1:3128 is the gateway); None when not a mirror's."""
        for own in (self.mirrors.served_at, self.mirrors.served_at.replace("127.0.0.1",
                                                                          "localhost")):
            if own and target[:len(own)].lower() == own.lower():
                target = target[len(own):]
                break
        return target.partition("?")[0] if target.startswith(PREFIX) else None

    async def handle(self, request: web.BaseRequest, path: str, caller: Caller,
                     scrubber: Scrubber) -> web.StreamResponse:
        ecosystem, _, rest = path.removeprefix("/cache/").partition("/")
        what = path[:200]
        try:
            if ecosystem not in self.upstreams or ecosystem not in self.handlers:
                raise Unavailable(f"no {ecosystem[:40]!r} mirror in this run (the phase's "
                                  f"cache.mirrors: {', '.join(self.upstreams) or 'none'})", 404)
            if request.method not in ("GET", "HEAD"):
                # Only the gateway writes the cache: nothing a worker sends is stored.
                raise Unavailable(f"{request.method} is refused: the cache is read-only to "
                                  "workers", 405)
            served = await self.handlers[ecosystem](self, request, rest, scrubber)
        except Unavailable as e:
            source = "refused" if e.status in (404, 405) else "failed"
            self._report(caller.on_fetch, Fetch(ecosystem, what, source, 0, 0, e.reason,
                                                artifact=False))
            return web.Response(status=e.status, text=SAID + e.reason + "\n")
        self._report(caller.on_fetch, Fetch(
            ecosystem, served.what, served.source, served.response.content_length or 0,
            served.upstream_bytes, served.reason, served.artifact))
        return served.response

    # -- index pages ----------------------------------------------------------------------

    async def page(self, ecosystem: str, key: str, url: str, *, accept: str,
                   what: str = "") -> Page:
        """The index page at ``url`` (kept as ``key``; ``what`` it is, said in reasons:
        the key), fetched now (concurrent askers share the fetch); the last good one when
        the upstream cannot answer; Unavailable when there is none."""
        page, _ = await self._once(f"page:{url}", lambda: self._fetch_page(
            ecosystem, key, url, accept, what or key))
        return page

    async def _fetch_page(self, ecosystem: str, key: str, url: str, accept: str,
                          what: str) -> Page:
        kept = self.store.load_index(ecosystem, key)
        headers = {"Accept": accept}
        if kept and kept[1].get("etag"):
            headers["If-None-Match"] = kept[1]["etag"]
        try:
            async with self.session.get(url, headers=headers, allow_redirects=True) as got:
                if got.status == 304 and kept:
                    return Page(kept[0], kept[1].get("type", ""), kept[1].get("url", url),
                                True, 0)
                if got.status in (404, 410, 451):
                    raise Unavailable(f"the upstream has no {what} ({got.status})", 404)
                if got.status != 200:
                    raise _UpstreamTrouble(f"the upstream answered {got.status}")
                body = await _read_at_most(got, MAX_INDEX)
                meta = {"etag": got.headers.get("ETag", ""), "url": str(got.url),
                        "type": got.headers.get("Content-Type", "")}
        except (aiohttp.ClientError, TimeoutError, OSError, _UpstreamTrouble) as e:
            reason = _why(e)
            if kept is None:
                raise Unavailable(f"the index of {what} could not be fetched ({reason}) and "
                                  "the cache has none") from e
            return Page(kept[0], kept[1].get("type", ""), kept[1].get("url", url), False, 0,
                        f"the upstream could not be reached ({reason}): served the index "
                        f"of {what} saved {_ago(kept[1])}")
        await asyncio.to_thread(self.store.save_index, ecosystem, key, body, meta)
        return Page(body, meta["type"], meta["url"], True, len(body))

    # -- artifacts ------------------------------------------------------------------------

    async def artifact(self, digest: str, url: str, what: str, *, algorithm: str = "sha256",
                       digest_of_file: DigestOfFile | None = None) -> tuple[Path, int]:
        """The artifact whose ``algorithm`` digest is ``digest``: from the store, or fetched
        from ``url`` into it first (verified); returns its path (named by its sha256) and
        the bytes fetched upstream for it now."""
        if (path := self.store.find(algorithm, digest)) is not None:
            return path, 0
        (path, fetched), mine = await self._once(
            f"blob:{algorithm}:{digest}",
            lambda: self._download(digest, url, what, algorithm, digest_of_file))
        return path, fetched if mine else 0   # who waited for another's download: cached

    async def _download(self, digest: str, url: str, what: str, algorithm: str,
                        digest_of_file: DigestOfFile | None) -> tuple[Path, int]:
        while (lock := self.store.try_lock(algorithm, digest)) is None:
            await asyncio.sleep(LOCK_POLL)    # another ticket's gateway is fetching it
        try:
            if (path := self.store.find(algorithm, digest)) is not None:
                return path, 0                # came while we waited
            return await self._fetch_into_store(digest, url, what, algorithm,
                                                digest_of_file)
        finally:
            self.store.unlock(lock)

    async def _fetch_into_store(self, digest: str, url: str, what: str, algorithm: str,
                                digest_of_file: DigestOfFile | None) -> tuple[Path, int]:
        writer = self.store.writer(digest, algorithm=algorithm, digest_of_file=digest_of_file)
        try:
            async with self.session.get(url, allow_redirects=True) as got:
                if got.status != 200:
                    raise _UpstreamTrouble(f"the upstream answered {got.status}")
                async for chunk in got.content.iter_chunked(CHUNK):
                    writer.write(chunk)
            path = await asyncio.to_thread(writer.commit)
        except HashMismatch as e:
            raise Unavailable(f"{what} from the upstream is not what its index published "
                              f"({e}): not kept, not served") from e
        except (aiohttp.ClientError, TimeoutError, OSError, _UpstreamTrouble) as e:
            writer.discard()
            raise Unavailable(f"{what} is not in the cache and could not be fetched "
                              f"({_why(e)})") from e
        except BaseException:
            writer.discard()
            raise
        self._size += writer.size
        if self._size > self.mirrors.max_bytes:
            await asyncio.to_thread(self.store.prune, self.mirrors.max_bytes)
            self._size = self.store.usage().bytes
        return path, writer.size

    async def _once(self, key: str, start: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """One ``start()`` at a time per key: who asks meanwhile gets its result. Says
        whether this call started it."""
        future = self._inflight.get(key)
        mine = future is None
        if future is None:
            future = asyncio.ensure_future(start())
            self._inflight[key] = future
            future.add_done_callback(lambda _: self._inflight.pop(key, None))
        # shield: one asker hanging up does not cancel the download the others wait for
        return await asyncio.shield(future), mine

    async def small(self, url: str, limit: int = 1 << 16) -> bytes | None:
        """A small upstream file (a checksum), or None when the upstream has none."""
        try:
            async with self.session.get(url, allow_redirects=True) as got:
                if got.status in (404, 410):
                    return None
                if got.status != 200:
                    raise _UpstreamTrouble(f"the upstream answered {got.status}")
                return await _read_at_most(got, limit)
        except (aiohttp.ClientError, TimeoutError, OSError, _UpstreamTrouble) as e:
            raise Unavailable(f"{url.rpartition('/')[2]} could not be fetched ({_why(e)})") from e

    async def distribution(self, url: str, sha256: str | None) -> tuple[Path, int]:
        """A Gradle wrapper's distribution zip from the store, or fetched into it: checked
        against the project's pinned sha256, else the ``.sha256`` published beside it."""
        name = url.rpartition("/")[2]
        if sha256 is None:
            said = await self.small(f"{url}.sha256")
            found = re.match(rb"\s*([0-9a-fA-F]{64})\b", said or b"")
            if found is None:
                raise Unavailable(f"{name} publishes no .sha256 and the project pins no "
                                  "distributionSha256Sum: not fetched", 404)
            sha256 = found.group(1).decode().lower()
        return await self.artifact(sha256, url, name)

    async def remember(self, ecosystem: str, key: str, value: str,
                       meta: dict[str, Any]) -> None:
        """A small fact of the gateway's own (a Maven path's sha256), kept in the store."""
        await asyncio.to_thread(self.store.save_index, ecosystem, key, value.encode(), meta)

    # -- answers --------------------------------------------------------------------------

    async def send_bytes(self, request: web.BaseRequest, scrubber: Scrubber, body: bytes,
                         content_type: str) -> web.StreamResponse:
        response = ScrubbedResponse(scrubber, headers=[("Content-Type", content_type)])
        response.content_length = len(body)
        await response.prepare(request)
        if request.method != "HEAD":
            await response.write(body)
        await response.write_eof()
        return response

    async def send_file(self, request: web.BaseRequest, scrubber: Scrubber, path: Path,
                        content_type: str) -> web.StreamResponse:
        response = ScrubbedResponse(scrubber, headers=[("Content-Type", content_type)])
        with open(path, "rb") as blob:   # open now: a prune meanwhile cannot cut it short
            response.content_length = blob.seek(0, 2)
            blob.seek(0)
            await response.prepare(request)
            while request.method != "HEAD" and (chunk := blob.read(CHUNK)):
                await response.write(chunk)
        await response.write_eof()
        return response


class _UpstreamTrouble(Exception):
    pass


async def _read_at_most(response: aiohttp.ClientResponse, limit: int) -> bytes:
    chunks, size = [], 0
    async for chunk in response.content.iter_chunked(CHUNK):
        size += len(chunk)
        if size > limit:
            raise _UpstreamTrouble(f"its page is over {limit >> 20} MiB")
        chunks.append(chunk)
    return b"".join(chunks)


def _why(error: BaseException) -> str:
    return (str(error) or type(error).__name__)[:300]


def _ago(meta: dict[str, Any]) -> str:
    minutes = max(0, int(time.time() - meta.get("saved", 0)) // 60)
    if minutes < 120:
        return f"{minutes} min ago"
    return f"{minutes // 60} h ago" if minutes < 2880 else f"{minutes // 1440} days ago"
