"""The Go module mirror (go's GOPROXY protocol): ``/cache/go/<module>/@v/…``.

A version list, a ``.info`` and ``@latest`` are the upstream proxy's pages, fetched every
time (the last good one when the upstream is gone). A ``.mod`` or a ``.zip`` is served only
when the go.sum hash ("h1:") of that module version is known — from the go.sum files of
the base commit (read by the lead from the host repo, never from a worker), else from the
checksum database's lookup through the upstream proxy (``cache.go_sumdb``) — and kept only
when the downloaded bytes have that hash. The checksum database's own files are passed
through as pages, so that the worker's go checks its signed tree itself as well.
"""

from __future__ import annotations

import base64
import hashlib
import re
import zipfile
from pathlib import Path
from urllib.parse import unquote

from aiohttp import web

from runner.gateway.cache.mirror import Mirror, Served, Unavailable
from runner.gateway.scrub import Scrubber

# Escaped as the protocol sends them: an upper-case letter is "!" and its lower case. A
# path element neither begins nor ends with a dot (go's rule), so none is "." or "..".
_ELEMENT = r"[a-z0-9_~!+-]([a-z0-9._~!+-]{0,198}[a-z0-9_~!+-])?"
_MODULE = re.compile(rf"{_ELEMENT}(/{_ELEMENT}){{0,30}}")
_VERSION = re.compile(r"v[a-z0-9._~!+-]{1,120}")
_TILE = re.compile(r"tile/\d{1,2}/(\d{1,3}|data)(/x\d{3})*/\d{3}(\.p/\d{1,3})?")


def escape(path: str) -> str:
    """A module path or version as the proxy protocol spells it (case made unambiguous)."""
    return re.sub(r"[A-Z]", lambda m: "!" + m.group().lower(), path)


def unescape(escaped: str) -> str | None:
    """The module path or version an escaped one stands for; None when it is not one."""
    if re.search(r"[A-Z]|![^a-z]|!$", escaped):
        return None
    return re.sub(r"!([a-z])", lambda m: m.group(1).upper(), escaped)


def _h1(file_sums: list[tuple[str, str]]) -> str:
    """Go's "h1:" hash, of (name, sha256 hex of its content) pairs: sha256 over the lines
    "<sha256 hex>  <name>\\n" in name order, base64 (what go.sum and the checksum database
    record)."""
    summary = hashlib.sha256()
    for name, digest in sorted(file_sums):
        if "\n" in name:
            raise ValueError("a file name with a newline")
        summary.update(f"{digest}  {name}\n".encode())
    return "h1:" + base64.b64encode(summary.digest()).decode()


def hash_zip(path: Path) -> str:
    """A module zip's h1 (its files' names and contents; nothing else of the zip counts)."""
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        if len(set(names)) != len(names):
            raise ValueError("a name twice in the zip")
        sums = []
        for name in names:
            digest = hashlib.sha256()
            with archive.open(name) as member:
                while chunk := member.read(1 << 20):
                    digest.update(chunk)
            sums.append((name, digest.hexdigest()))
    return _h1(sums)


def hash_mod(path: Path) -> str:
    """A go.mod's h1, as go.sum's "<module> <version>/go.mod" line records it."""
    return _h1([("go.mod", hashlib.sha256(path.read_bytes()).hexdigest())])


def sums_in(text: str) -> dict[str, str]:
    """The lines of a go.sum (or a checksum database lookup): "<module> <version>[/go.mod]"
    -> its h1 hash."""
    sums = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2].startswith("h1:"):
            sums[f"{parts[0]} {parts[1]}"] = parts[2]
    return sums


def _key(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


async def handle(mirror: Mirror, request: web.BaseRequest, rest: str,
                 scrubber: Scrubber) -> Served:
    rest = unquote(rest)              # go sends "!" as %21; what it decodes to is checked
    if rest.startswith("sumdb/"):
        return await _sumdb(mirror, request, rest.removeprefix("sumdb/"), scrubber)
    module_part, at, tail = rest.partition("/@")
    module = unescape(module_part) if at and _MODULE.fullmatch(module_part) else None
    found = re.fullmatch(r"v/(.+)\.(info|mod|zip)", tail)
    version = unescape(found.group(1)) if found and _VERSION.fullmatch(found.group(1)) \
        else None
    if module is not None and tail in ("v/list", "latest"):
        said = "versions" if tail == "v/list" else "latest"
        return await _page(mirror, request, rest, f"{said} of {module}", scrubber)
    if module is not None and found and version is not None:
        if found.group(2) == "info":
            return await _page(mirror, request, rest, f"{module} {version} info", scrubber)
        return await _verified(mirror, request, module, version, found.group(2), scrubber)
    raise Unavailable(f"/cache/go/{rest[:120]} is no path of a Go module proxy", 404)


async def _page(mirror: Mirror, request: web.BaseRequest, rest: str, what: str,
                scrubber: Scrubber) -> Served:
    page = await mirror.page("go", _key(rest), mirror.upstreams["go"] + rest, accept="*/*",
                             what=what)
    content_type = "application/json" if rest.endswith(("info", "latest")) else "text/plain"
    response = await mirror.send_bytes(request, scrubber, page.body, content_type)
    return Served.page(response, what, page)


def _sumdb_name(mirror: Mirror) -> str | None:
    said = mirror.mirrors.go_sumdb
    return said.split()[0].partition("+")[0] if said else None


async def _sumdb(mirror: Mirror, request: web.BaseRequest, rest: str,
                 scrubber: Scrubber) -> Served:
    """The checksum database, through the upstream proxy (go asks the proxy first): the
    phase's alone."""
    name, _, file = rest.partition("/")
    if name != _sumdb_name(mirror):
        raise Unavailable(f"the checksum database {name[:80]!r} is not this run's (the "
                          f"phase's cache.go_sumdb: {_sumdb_name(mirror) or 'none'})", 404)
    if file == "supported":
        return Served(await mirror.send_bytes(request, scrubber, b"", "text/plain"),
                      f"checksum database {name}", "cache", artifact=False)
    module, _, version = file.removeprefix("lookup/").rpartition("@")
    lookup = file.startswith("lookup/") and _MODULE.fullmatch(module) \
        and _VERSION.fullmatch(version)
    if not (file == "latest" or lookup or _TILE.fullmatch(file)):
        raise Unavailable(f"{file[:120]} is no file of a checksum database", 404)
    return await _page(mirror, request, f"sumdb/{rest}", f"checksum database {file[:80]}",
                       scrubber)


async def _published(mirror: Mirror, module: str, version: str, line: str) -> str:
    """The h1 of ``line`` ("<module> <version>[/go.mod]"): the base's go.sum, else the
    checksum database's lookup through the upstream."""
    if line in mirror.mirrors.go_sums:
        return mirror.mirrors.go_sums[line]
    name = _sumdb_name(mirror)
    if name is None:
        raise Unavailable(f"{line} is in no go.sum of the base commit, and the run has no "
                          "checksum database to check it against (cache.go_sumdb)", 404)
    file = f"lookup/{escape(module)}@{escape(version)}"
    page = await mirror.page("go", _key(f"{name} {file}"),
                             f"{mirror.upstreams['go']}sumdb/{name}/{file}", accept="*/*",
                             what=f"checksum database {name}'s record of {module} {version}")
    published = sums_in(page.body.decode("utf-8", "replace")).get(line)
    if published is None:
        raise Unavailable(f"the checksum database {name} records no {line}")
    return published


async def _verified(mirror: Mirror, request: web.BaseRequest, module: str, version: str,
                    kind: str, scrubber: Scrubber) -> Served:
    line = f"{module} {version}" + ("/go.mod" if kind == "mod" else "")
    what = f"{module} {version}.{kind}"
    # Known already (verified once, its hash the base's go.sum's or unchanged): no upstream.
    kept = mirror.store.load_index("go", _key(line))
    h1 = kept[1].get("h1") if kept else None
    path = mirror.store.blob(kept[0].decode()) if kept else None
    if path is None or mirror.mirrors.go_sums.get(line, h1) != h1:
        h1 = await _published(mirror, module, version, line)
        url = f"{mirror.upstreams['go']}{escape(module)}/@v/{escape(version)}.{kind}"
        path, fetched = await mirror.artifact(
            h1, url, f"{what} ({h1})", algorithm="h1",
            digest_of_file=hash_zip if kind == "zip" else hash_mod)
        await mirror.remember("go", _key(line), path.name, {"h1": h1})
    else:
        fetched = 0
    content_type = "application/zip" if kind == "zip" else "text/plain"
    response = await mirror.send_file(request, scrubber, path, content_type)
    return Served(response, what, "upstream" if fetched else "cache", fetched)
