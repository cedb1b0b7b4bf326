"""The Maven repository mirror (Gradle, Maven): ``/cache/maven/<path>`` in the repository
layout.

A release artifact (a pom, a jar, a Gradle module file) is immutable once published: it is
fetched upstream once, checked against the checksum the repository publishes beside it
(``.sha256``, else ``.sha1``; one that publishes neither is not served), stored by its
sha256, and the path remembered. What changes — ``maven-metadata.xml``, anything of a
``-SNAPSHOT`` version, signatures — is fetched every time, the last good copy served when
the upstream is gone. A checksum a build asks for is computed here from what it is served.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from aiohttp import web

from runner.gateway.cache.mirror import Mirror, Served, Unavailable
from runner.gateway.scrub import Scrubber

_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+-]{0,199}")
CHECKSUMS = {".sha1": "sha1", ".md5": "md5", ".sha256": "sha256", ".sha512": "sha512"}
PUBLISHED = (("sha256", 64), ("sha1", 40))   # what is trusted to check an artifact, in order


def _key(path: str) -> str:
    return hashlib.sha256(path.encode()).hexdigest()


def changing(path: str) -> bool:
    """Whether the file at ``path`` may change upstream (so it is fetched every time)."""
    name = path.rpartition("/")[2]
    return (name.startswith("maven-metadata") or "-SNAPSHOT/" in path
            or name.endswith(".asc"))


async def handle(mirror: Mirror, request: web.BaseRequest, rest: str,
                 scrubber: Scrubber) -> Served:
    segments = rest.split("/")
    if len(segments) < 2 or not all(_SEGMENT.fullmatch(s) and s not in (".", "..")
                                    for s in segments):
        raise Unavailable(f"/cache/maven/{rest[:120]} is no path of a Maven repository", 404)
    base, dot, suffix = rest.rpartition(".")
    algorithm = CHECKSUMS.get(f".{suffix}") if dot else None
    name = rest.rpartition("/")[2]
    if algorithm is not None:                       # computed from what a build is served
        got, source, fetched, reason = await _file(mirror, base)
        digest = hashlib.new(algorithm)
        if isinstance(got, Path):
            with open(got, "rb") as blob:
                while chunk := blob.read(1 << 20):
                    digest.update(chunk)
        else:
            digest.update(got)
        response = await mirror.send_bytes(request, scrubber, digest.hexdigest().encode(),
                                           "text/plain")
        return Served(response, name, source, fetched, reason, artifact=False)
    got, source, fetched, reason = await _file(mirror, rest)
    if isinstance(got, Path):
        response = await mirror.send_file(request, scrubber, got, _content_type(rest))
    else:
        response = await mirror.send_bytes(request, scrubber, got, _content_type(rest))
    return Served(response, name, source, fetched, reason, artifact=not changing(rest))


async def _file(mirror: Mirror, path: str) -> tuple[bytes | Path, str, int, str]:
    """What is at ``path`` (a changing file's bytes; a stored artifact's path), where it
    came from (cache | upstream | stale), the bytes fetched upstream for it now, and why
    it is stale."""
    url = mirror.upstreams["maven"] + path
    if changing(path):
        page = await mirror.page("maven", _key(path), url, accept="*/*")
        return (page.body, "upstream" if page.fresh else "stale", page.fetched,
                page.stale_reason)
    known = mirror.store.load_index("maven", _key(path))
    if known is not None and (blob := mirror.store.blob(known[0].decode())) is not None:
        return blob, "cache", 0, ""
    algorithm, digest = await _published(mirror, url, path)
    blob, fetched = await mirror.artifact(digest, url, path, algorithm=algorithm)
    await mirror.remember("maven", _key(path), blob.name, {"path": path})
    return blob, "upstream" if fetched else "cache", fetched, ""


async def _published(mirror: Mirror, url: str, path: str) -> tuple[str, str]:
    """The checksum the repository publishes for the artifact at ``url``."""
    for algorithm, length in PUBLISHED:
        text = await mirror.small(f"{url}.{algorithm}")
        if text is None:
            continue
        # The file holds the digest, perhaps followed by a file name.
        found = re.match(rf"\s*([0-9a-fA-F]{{{length}}})\b", text.decode("ascii", "replace"))
        if found:
            return algorithm, found.group(1).lower()
    raise Unavailable(f"{path} has no checksum in the upstream repository (.sha256 or "
                      ".sha1), or is not there: not served", 404)


def _content_type(path: str) -> str:
    if path.endswith((".pom", ".xml", ".module")):
        return "application/xml" if not path.endswith(".module") else "application/json"
    return "application/java-archive" if path.endswith(".jar") else "application/octet-stream"
