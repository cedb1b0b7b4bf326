"""The npm registry mirror (npm, pnpm, yarn's npm protocol): ``/cache/npm/<package>``.

A package's document (its "packument", abbreviated or full as the tool asks) is fetched
upstream every time, the last good one served when the upstream is gone, and served with
each version's tarball pointing here: ``/cache/npm/-/<package>/<version>.tgz``. A tarball is
fetched upstream only from the URL the document the gateway fetched gives for that version,
checked against the ``integrity`` (sha512) it publishes, else its ``shasum`` (sha1), and
stored by its sha256; a version that publishes neither is left out.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from typing import Any
from urllib.parse import quote

from aiohttp import web

from runner.gateway.cache.mirror import Mirror, Page, Served, Unavailable
from runner.gateway.scrub import Scrubber

_NAME = re.compile(r"(@[a-z0-9][a-z0-9._~-]{0,100}/)?[a-z0-9._~][a-z0-9._~-]{0,213}")
_VERSION = re.compile(r"[0-9A-Za-z.+-]{1,100}")
ABBREVIATED = "application/vnd.npm.install-v1+json"
_KEPT = ("name", "version", "dependencies", "optionalDependencies", "peerDependencies",
         "peerDependenciesMeta", "bundleDependencies", "bundledDependencies", "bin",
         "directories", "engines", "os", "cpu", "libc", "deprecated", "hasInstallScript",
         "_hasShrinkwrap", "license", "funding", "acceptDependencies", "devDependencies")


async def handle(mirror: Mirror, request: web.BaseRequest, rest: str,
                 scrubber: Scrubber) -> Served:
    rest = re.sub("%2[fF]", "/", rest)          # npm asks for @scope%2fname
    if rest.startswith("-/"):
        found = re.fullmatch(r"-/(.+)/([^/]+)\.tgz", rest)
        if found and _NAME.fullmatch(found.group(1)) and _VERSION.fullmatch(found.group(2)):
            return await _tarball(mirror, request, found.group(1), found.group(2), scrubber)
    elif _NAME.fullmatch(rest):
        return await _document(mirror, request, rest, scrubber)
    raise Unavailable(f"/cache/npm/{rest[:120]} is no path of the npm mirror", 404)


def _key(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


async def _fetched(mirror: Mirror, name: str, accept: str) -> tuple[Page, dict[str, Any]]:
    url = mirror.upstreams["npm"] + quote(name, safe="@")       # @scope%2fname upstream too
    page = await mirror.page("npm", _key(name) + (".min" if accept == ABBREVIATED else ""),
                             url, accept=accept)
    data = _json(page.body)
    if data is None:
        raise Unavailable(f"the upstream's document of {name} is no JSON object")
    return page, data


def _json(body: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def published(dist: Any) -> tuple[str, str] | None:
    """The digest a version's dist publishes for its tarball: (algorithm, hex)."""
    if not isinstance(dist, dict):
        return None
    for entry in str(dist.get("integrity", "")).split():
        algorithm, _, value = entry.partition("-")
        if algorithm == "sha512":
            try:
                return "sha512", base64.b64decode(value, validate=True).hex()
            except (binascii.Error, ValueError):
                continue
    shasum = dist.get("shasum")
    if isinstance(shasum, str) and re.fullmatch(r"[0-9a-f]{40}", shasum):
        return "sha1", shasum
    return None


def _dist(data: Any, version: str) -> tuple[tuple[str, str] | None, str | None]:
    """What a document says of ``version``'s tarball: its published digest, its URL."""
    versions = data.get("versions") if isinstance(data, dict) else None
    meta = versions.get(version) if isinstance(versions, dict) else None
    dist = meta.get("dist") if isinstance(meta, dict) else None
    url = dist.get("tarball") if isinstance(dist, dict) else None
    return published(dist), url if isinstance(url, str) and url.startswith(
        ("https://", "http://")) else None


async def _document(mirror: Mirror, request: web.BaseRequest, name: str,
                    scrubber: Scrubber) -> Served:
    wants = ABBREVIATED if ABBREVIATED in request.headers.get("Accept", "") \
        else "application/json"
    page, data = await _fetched(mirror, name, wants)
    versions = {}
    for version, meta in (data.get("versions") or {}).items():
        if not isinstance(meta, dict) or not _VERSION.fullmatch(str(version)) \
                or published(meta.get("dist")) is None:
            continue
        dist = meta["dist"]
        versions[version] = {**{k: meta[k] for k in _KEPT if k in meta},
                             "dist": {**{k: dist[k] for k in ("integrity", "shasum")
                                         if k in dist},
                                      "tarball": f"{mirror.mirrors.served_at}/cache/npm/-/"
                                                 f"{name}/{version}.tgz"}}
    tags = {tag: v for tag, v in (data.get("dist-tags") or {}).items() if v in versions}
    body = json.dumps({"name": name, "dist-tags": tags, "versions": versions,
                       **({"modified": data["modified"]} if "modified" in data else {})})
    response = await mirror.send_bytes(request, scrubber, body.encode(), wants)
    return Served.page(response, f"index of {name}", page)


async def _tarball(mirror: Mirror, request: web.BaseRequest, name: str, version: str,
                   scrubber: Scrubber) -> Served:
    what = f"{name} {version}"
    # Known already (from a document fetched before, and the tarball stored): no upstream.
    kept = mirror.store.load_index("npm", _key(name) + ".min")
    digest = _dist(_json(kept[0]), version)[0] if kept else None
    path = mirror.store.find(*digest) if digest else None
    fetched = 0
    if path is None:
        _, data = await _fetched(mirror, name, ABBREVIATED)
        digest, url = _dist(data, version)
        if digest is None or url is None:
            raise Unavailable(f"{what} is in no document of {name} the cache fetched", 404)
        path, fetched = await mirror.artifact(digest[1], url, what, algorithm=digest[0])
    response = await mirror.send_file(request, scrubber, path, "application/octet-stream")
    return Served(response, f"{what}.tgz", "upstream" if fetched else "cache", fetched)
