"""The Rust crate mirror (cargo): a sparse registry index.

``/cache/crates/index/config.json`` is the mirror's own (its downloads are here too);
every other index file is the upstream's, fetched each time (the last good one when the
upstream is gone). ``/cache/crates/dl/<crate>/<version>/download`` is served by the cksum
the index file of that crate publishes for that version, fetched upstream from the download
URL the upstream's config.json gives, and kept only when its bytes have that sha256.
"""

from __future__ import annotations

import json
import re

from aiohttp import web

from runner.gateway.cache.mirror import Mirror, Page, Served, Unavailable
from runner.gateway.scrub import Scrubber

_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_VERSION = re.compile(r"[0-9A-Za-z.+-]{1,100}")
_MARKERS = ("{crate}", "{version}", "{prefix}", "{lowerprefix}", "{sha256-checksum}")


def index_path(name: str) -> str:
    """Where the sparse index keeps a crate's file (cargo's layout)."""
    low = name.lower()
    return f"{_prefix(low)}/{low}"


async def handle(mirror: Mirror, request: web.BaseRequest, rest: str,
                 scrubber: Scrubber) -> Served:
    if rest == "index/config.json":
        body = json.dumps({"dl": f"{mirror.mirrors.served_at}/cache/crates/dl"}).encode()
        return Served(await mirror.send_bytes(request, scrubber, body, "application/json"),
                      "config.json", "cache", artifact=False)
    if rest.startswith("index/"):
        path = rest.removeprefix("index/")
        name = path.rpartition("/")[2]
        if not _NAME.fullmatch(name) or index_path(name) != path:
            raise Unavailable(f"/cache/crates/{rest[:120]} is no file of a sparse index", 404)
        page = await _index_file(mirror, name)
        response = await mirror.send_bytes(request, scrubber, page.body, "text/plain")
        return Served.page(response, f"index of {name.lower()}", page)
    parts = rest.split("/")
    if len(parts) == 4 and parts[0] == "dl" and parts[3] == "download" \
            and _NAME.fullmatch(parts[1]) and _VERSION.fullmatch(parts[2]):
        return await _download(mirror, request, parts[1], parts[2], scrubber)
    raise Unavailable(f"/cache/crates/{rest[:120]} is no path of the crate mirror", 404)


async def _index_file(mirror: Mirror, name: str) -> Page:
    return await mirror.page("crates", name.lower(),
                             mirror.upstreams["crates"] + index_path(name), accept="*/*")


async def _download(mirror: Mirror, request: web.BaseRequest, name: str, version: str,
                    scrubber: Scrubber) -> Served:
    what = f"{name} {version}"
    page = await _index_file(mirror, name)
    cksum = _cksum(page.body, name, version)
    if cksum is None:
        raise Unavailable(f"{what} is in no index file of {name} the cache fetched", 404)
    fetched = 0
    if (path := mirror.store.blob(cksum)) is None:
        path, fetched = await mirror.artifact(cksum, await _dl_url(mirror, name, version,
                                                                   cksum), what)
    response = await mirror.send_file(request, scrubber, path, "application/x-tar")
    return Served(response, f"{what}.crate", "upstream" if fetched else "cache", fetched)


def _cksum(body: bytes, name: str, version: str) -> str | None:
    for line in body.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and str(entry.get("name", "")).lower() == name.lower() \
                and entry.get("vers") == version:
            cksum = entry.get("cksum")
            return cksum if isinstance(cksum, str) and re.fullmatch(r"[0-9a-f]{64}", cksum) \
                else None
    return None


async def _dl_url(mirror: Mirror, name: str, version: str, cksum: str) -> str:
    page = await mirror.page("crates", "config.json", mirror.upstreams["crates"] + "config.json",
                             accept="application/json")
    try:
        dl = json.loads(page.body)["dl"]
        assert isinstance(dl, str) and dl.startswith(("https://", "http://"))
    except (ValueError, KeyError, TypeError, AssertionError) as e:
        raise Unavailable("the upstream index's config.json names no download URL") from e
    if not any(marker in dl for marker in _MARKERS):
        return f"{dl.rstrip('/')}/{name}/{version}/download"
    for marker, value in (("{crate}", name), ("{version}", version),
                          ("{prefix}", _prefix(name)), ("{lowerprefix}", _prefix(name.lower())),
                          ("{sha256-checksum}", cksum)):
        dl = dl.replace(marker, value)
    return dl


def _prefix(name: str) -> str:
    """cargo's {prefix}: the index file's folder, in the name's own case."""
    if len(name) <= 2:
        return str(len(name))
    return f"3/{name[0]}" if len(name) == 3 else f"{name[:2]}/{name[2:4]}"
