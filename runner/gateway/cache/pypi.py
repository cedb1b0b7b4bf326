"""The Python package mirror (pip, uv): the simple repository API.

``/cache/pypi/simple/<project>/`` answers the upstream's page for the project (JSON, PEP
691; an HTML page, PEP 503, is read too) as JSON whose files link back here, and only files
whose sha256 the page publishes: ``/cache/pypi/files/<project>/<sha256>/<filename>``. A file
is served by that hash; fetched upstream only from the URL an index page this cache fetched
itself gives for it, and kept only when its bytes have that hash. Metadata files (PEP 658)
are left out of the pages, so an installer reads a wheel's own.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urldefrag, urljoin

from aiohttp import web

from runner.gateway.cache.mirror import Mirror, Page, Served, Unavailable
from runner.gateway.scrub import Scrubber

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
ACCEPT = f"{JSON_TYPE}, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.1"
_PROJECT = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,198}[A-Za-z0-9])?")
_FILENAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+!-]{0,250}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_KEPT = ("requires-python", "yanked", "size", "upload-time")


def normalized(project: str) -> str:
    return re.sub(r"[-_.]+", "-", project).lower()


async def handle(mirror: Mirror, request: web.BaseRequest, rest: str,
                 scrubber: Scrubber) -> Served:
    parts = rest.split("/")
    if len(parts) == 3 and parts[0] == "simple" and parts[2] == "" \
            and _PROJECT.fullmatch(parts[1]):
        return await _project_page(mirror, request, normalized(parts[1]), scrubber)
    if len(parts) == 4 and parts[0] == "files" and _PROJECT.fullmatch(parts[1]) \
            and _SHA256.fullmatch(parts[2]) and _FILENAME.fullmatch(parts[3]):
        return await _file(mirror, request, normalized(parts[1]), parts[2], parts[3],
                           scrubber)
    raise Unavailable(f"/cache/pypi/{rest[:120]} is no path of the Python package mirror "
                      "(…/simple/<project>/, or a file a page of it links to)", 404)


async def _page(mirror: Mirror, project: str) -> tuple[Page, list[dict[str, Any]]]:
    page = await mirror.page("pypi", project, mirror.upstreams["pypi"] + project + "/",
                             accept=ACCEPT)
    return page, files_of(page.body, page.content_type, page.url)


async def _project_page(mirror: Mirror, request: web.BaseRequest, project: str,
                        scrubber: Scrubber) -> Served:
    page, files = await _page(mirror, project)
    listed = [{"filename": f["filename"], "hashes": {"sha256": f["sha256"]},
               "url": f"../../files/{project}/{f['sha256']}/{f['filename']}",
               **{k: f[k] for k in _KEPT if k in f}} for f in files]
    body = json.dumps({"meta": {"api-version": "1.0"}, "name": project,
                       "files": listed}).encode()
    response = await mirror.send_bytes(request, scrubber, body, JSON_TYPE)
    return Served.page(response, f"index of {project}", page)


async def _file(mirror: Mirror, request: web.BaseRequest, project: str, sha256: str,
                filename: str, scrubber: Scrubber) -> Served:
    what = f"{filename} (sha256 {sha256[:12]}…)"
    if (path := mirror.store.blob(sha256)) is None:
        # Where to fetch it from: the page of its project, as the upstream gives it now
        # (or last gave it): never a URL a worker sent.
        _, files = await _page(mirror, project)
        found = next((f for f in files if f["sha256"] == sha256), None)
        if found is None or found["filename"] != filename:
            raise Unavailable(f"{filename} with sha256 {sha256} is on no index page of "
                              f"{project} the cache fetched", 404)
        path, fetched = await mirror.artifact(sha256, found["url"], what)
    else:
        fetched = 0
    response = await mirror.send_file(request, scrubber, path, "application/octet-stream")
    return Served(response, what, "upstream" if fetched else "cache", fetched)


def files_of(body: bytes, content_type: str, base: str) -> list[dict[str, Any]]:
    """The files a project page lists that publish a sha256: filename, sha256, absolute
    url, and what else an installer reads (requires-python, yanked)."""
    if "json" in content_type:
        try:
            data = json.loads(body)
        except ValueError:
            return []
        entries = data.get("files") if isinstance(data, dict) else None
        out = []
        for entry in entries if isinstance(entries, list) else []:
            if not isinstance(entry, dict):
                continue
            hashes = entry.get("hashes")
            sha = hashes.get("sha256") if isinstance(hashes, dict) else None
            out.append({**{k: entry[k] for k in _KEPT if k in entry},
                        "filename": entry.get("filename"), "sha256": sha,
                        "url": urljoin(base, str(entry.get("url", "")))})
    else:
        links = _Links()
        links.feed(body.decode("utf-8", "replace"))
        out = []
        for href, attrs in links.found:
            url, fragment = urldefrag(urljoin(base, href))
            kind, _, value = fragment.partition("=")
            entry: dict[str, Any] = {"filename": url.rpartition("/")[2], "url": url,
                                     "sha256": value if kind == "sha256" else None}
            if "data-requires-python" in attrs:
                entry["requires-python"] = attrs["data-requires-python"]
            if "data-yanked" in attrs:
                entry["yanked"] = attrs["data-yanked"] or True
            out.append(entry)
    return [f for f in out if isinstance(f["filename"], str) and _FILENAME.fullmatch(f["filename"])
            and isinstance(f["sha256"], str) and _SHA256.fullmatch(f["sha256"])]


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "a" and values.get("href"):
            self.found.append((values["href"], values))
