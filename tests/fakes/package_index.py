"""A package index of the test's own on 127.0.0.1: a Python simple repository (PEP 691 JSON,
or PEP 503 HTML), a Rust sparse registry, a Maven repository, an npm registry and a Go
module proxy with a checksum database's lookups, serving what the test made. It
counts every request by path, can hand out bytes other than those its index publishes
(tamper), hold a download half-sent (stall), echo request headers back, and stop."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import threading
import zipfile
from collections import Counter
from dataclasses import dataclass
from typing import Any

from aiohttp import web


def make_wheel(name: str, version: str, requires: tuple[str, ...] = (),
               padding: int = 0) -> tuple[str, bytes]:
    """A pure-Python wheel pip installs: module ``name`` holding VERSION (and ``padding``
    bytes of a data file, to make it large)."""
    dist = f"{name}-{version}"
    files = {f"{name}/__init__.py": f"VERSION = {version!r}\n".encode(),
             f"{dist}.dist-info/METADATA": (
                 f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
                 + "".join(f"Requires-Dist: {r}\n" for r in requires)).encode(),
             f"{dist}.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\n"
                                       b"Root-Is-Purelib: true\nTag: py3-none-any\n"}
    if padding:
        files[f"{name}/padding.bin"] = bytes(range(256)) * (padding // 256)
    record = "".join(f"{path},,\n" for path in files) + f"{dist}.dist-info/RECORD,,\n"
    files[f"{dist}.dist-info/RECORD"] = record.encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as wheel:
        for path, data in files.items():
            info = zipfile.ZipInfo(path, date_time=(2020, 1, 1, 0, 0, 0))
            wheel.writestr(info, data)
    return f"{name}-{version}-py3-none-any.whl", out.getvalue()


PAGE_CACHING = {"Cache-Control": "max-age=600, public"}
FILE_CACHING = {"Cache-Control": "max-age=365000000, immutable, public"}


def _metadata(wheel: bytes) -> bytes:
    with zipfile.ZipFile(io.BytesIO(wheel)) as archive:
        return archive.read(next(n for n in archive.namelist()
                                 if n.endswith(".dist-info/METADATA")))


def make_tarball(name: str, version: str, dependencies: dict[str, str] | None = None) -> bytes:
    """An npm package's tarball: package/package.json and an index.js exporting VERSION."""
    import tarfile

    files = {"package/package.json": json.dumps({"name": name, "version": version,
                                                 "main": "index.js",
                                                 "dependencies": dependencies or {}}).encode(),
             "package/index.js": f"module.exports = {{VERSION: {version!r}}};\n".encode()}
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size, info.mtime, info.mode = len(data), 1577836800, 0o644
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def go_h1(files: dict[str, bytes]) -> str:
    """Go's h1 of named files, written here apart from the gateway's (the worker tests' real
    go is the judge of both)."""
    import base64

    lines = "".join(f"{hashlib.sha256(files[n]).hexdigest()}  {n}\n" for n in sorted(files))
    return "h1:" + base64.b64encode(hashlib.sha256(lines.encode()).digest()).decode()


def go_escape(path: str) -> str:
    return "".join("!" + c.lower() if c.isupper() else c for c in path)


@dataclass
class GoModule:
    zip: bytes
    mod: bytes
    sum: str                  # the go.sum lines of this version
    time: str = "2024-01-01T00:00:00Z"


def make_go_module(module: str, version: str, go_files: dict[str, str],
                   requires: dict[str, str] | None = None) -> GoModule:
    """A module version as a proxy serves it: its zip (files under module@version/), its
    go.mod, and the two lines go.sum records of it."""
    mod = f"module {module}\n\ngo 1.19\n" + "".join(
        f"\nrequire {m} {v}\n" for m, v in (requires or {}).items())
    files = {f"{module}@{version}/{name}": text.encode() for name, text in
             {**go_files, "go.mod": mod}.items()}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0)), data)
    total = go_h1(files)
    return GoModule(out.getvalue(), mod.encode(),
                    f"{module} {version} {total}\n"
                    f"{module} {version}/go.mod {go_h1({'go.mod': mod.encode()})}\n")


class PackageIndex:
    def __init__(self, *, html: bool = False) -> None:
        self.wheels: dict[str, dict[str, bytes]] = {}      # project -> filename -> bytes
        self.crates: dict[str, dict[str, bytes]] = {}      # crate -> version -> .crate
        self.maven: dict[str, bytes] = {}                  # repository path -> bytes
        self.npm: dict[str, dict[str, tuple[bytes, dict[str, str]]]] = {}  # name -> version
        self.go: dict[str, dict[str, GoModule]] = {}       # module -> version -> files
        self.hits: Counter[str] = Counter()
        self.headers_seen: list[dict[str, str]] = []
        self.tampered: set[str] = set()
        self.stalled: set[str] = set()
        self.echo = False
        self.html = html
        self.stopped = False
        self.stop_after: str | None = None   # a path: once it is served, the index stops
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        self.url = f"http://127.0.0.1:{self.port}"

    def add_wheel(self, project: str, filename: str, data: bytes) -> str:
        self.wheels.setdefault(project, {})[filename] = data
        return hashlib.sha256(data).hexdigest()

    def add_maven(self, path: str, data: bytes, checksums: tuple[str, ...] = ("sha1",)) -> None:
        """A file of the Maven repository at /maven/, with the checksum files named."""
        self.maven[path] = data
        for algorithm in checksums:
            self.maven[f"{path}.{algorithm}"] = hashlib.new(algorithm, data).hexdigest().encode()

    def add_npm(self, name: str, version: str,
                dependencies: dict[str, str] | None = None) -> bytes:
        data = make_tarball(name, version, dependencies)
        self.npm.setdefault(name, {})[version] = (data, dependencies or {})
        return data

    def add_go(self, module: str, version: str, go_files: dict[str, str],
               requires: dict[str, str] | None = None) -> GoModule:
        made = make_go_module(module, version, go_files, requires)
        self.go.setdefault(module, {})[version] = made
        return made

    def add_crate(self, name: str, version: str, data: bytes) -> str:
        self.crates.setdefault(name, {})[version] = data
        return hashlib.sha256(data).hexdigest()

    async def _start(self) -> int:
        app = web.Application()
        app.router.add_get("/simple/{project}/", self._project)
        app.router.add_get("/files/{filename}", self._file)
        app.router.add_get("/maven/{path:.+}", self._maven)
        app.router.add_get("/npm/-/{file}", self._npm_tarball)
        app.router.add_get("/npm/{name:.+}", self._npm_document)
        app.router.add_get("/go/sumdb/{db}/lookup/{line:.+}", self._go_lookup)
        app.router.add_get("/go/{path:.+}", self._go)
        app.router.add_get("/crates/config.json", self._config)
        app.router.add_get("/crates/dl/{name}/{version}/download", self._crate)
        app.router.add_get("/crates/{path:.+}", self._crate_index)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        self.site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await self.site.start()
        return self.site._server.sockets[0].getsockname()[1]   # type: ignore[union-attr]

    def _seen(self, request: web.Request) -> dict[str, str]:
        self.hits[request.path] += 1
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.headers_seen.append(headers)
        return {f"X-Echo-{k}": v for k, v in headers.items()} if self.echo else {}

    async def _project(self, request: web.Request) -> web.Response:
        echoed = self._seen(request)
        files = self.wheels.get(request.match_info["project"])
        if files is None:
            return web.Response(status=404)
        listed = [(name, hashlib.sha256(data).hexdigest()) for name, data in files.items()]
        metadata = {name: hashlib.sha256(_metadata(data)).hexdigest() for name, data in
                    files.items()}
        if self.html:
            links = "".join(f'<a href="../../files/{n}#sha256={h}">{n}</a>\n' for n, h in listed)
            return web.Response(text=f"<html><body>{links}</body></html>",
                                content_type="text/html", headers=echoed)
        body = {"meta": {"api-version": "1.0"}, "name": request.match_info["project"],
                "files": [{"filename": n, "url": f"../../files/{n}", "hashes": {"sha256": h},
                           "core-metadata": {"sha256": metadata[n]}} for n, h in listed]}
        if self.echo:
            body["echo"] = self.headers_seen[-1]
        # As the big index does: pages fresh for ten minutes, files forever.
        return web.Response(text=json.dumps(body), headers={**echoed, **PAGE_CACHING},
                            content_type="application/vnd.pypi.simple.v1+json")

    async def _file(self, request: web.Request) -> web.StreamResponse:
        self._seen(request)
        name = request.match_info["filename"]
        wheel = name.removesuffix(".metadata")
        data = next((files[wheel] for files in self.wheels.values() if wheel in files), None)
        if data is not None and name != wheel:      # PEP 658: the wheel's METADATA alone
            return web.Response(body=_metadata(data), headers=FILE_CACHING)
        if data is None:
            return web.Response(status=404)
        return await self._send(request, name, data)

    async def _send(self, request: web.Request, name: str, data: bytes) -> web.StreamResponse:
        if name in self.tampered:
            data = data[:-1] + bytes([data[-1] ^ 1])
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream",
                                               **FILE_CACHING})
        response.content_length = len(data)
        await response.prepare(request)
        if name in self.stalled:
            await response.write(data[:len(data) // 2])
            while name in self.stalled:       # until the test lets it go (or closes)
                await asyncio.sleep(0.1)
            await response.write(data[len(data) // 2:])
            await response.write_eof()
            return response
        await response.write(data)
        await response.write_eof()
        if request.path == self.stop_after:       # gone mid-run, as a real upstream may go
            self.stopped = True
            self.loop.create_task(self.runner.cleanup())
        return response

    async def _maven(self, request: web.Request) -> web.StreamResponse:
        self._seen(request)
        path = request.match_info["path"]
        if path not in self.maven:
            return web.Response(status=404)
        return await self._send(request, path, self.maven[path])

    async def _npm_document(self, request: web.Request) -> web.Response:
        self._seen(request)
        name = request.match_info["name"]
        versions = self.npm.get(name)
        if versions is None:
            return web.Response(status=404)
        import base64

        body = {"name": name, "dist-tags": {"latest": list(versions)[-1]}, "versions": {
            v: {"name": name, "version": v, "dependencies": deps, "dist": {
                "tarball": f"{self.url}/npm/-/{name.replace('/', '_')}-{v}.tgz",
                "shasum": hashlib.sha1(data).hexdigest(),
                "integrity": "sha512-" + base64.b64encode(
                    hashlib.sha512(data).digest()).decode()}}
            for v, (data, deps) in versions.items()}}
        return web.json_response(body)

    async def _npm_tarball(self, request: web.Request) -> web.StreamResponse:
        self._seen(request)
        file = request.match_info["file"]
        for name, versions in self.npm.items():
            for version, (data, _) in versions.items():
                if file == f"{name.replace('/', '_')}-{version}.tgz":
                    return await self._send(request, file, data)
        return web.Response(status=404)

    def _go_module(self, escaped: str) -> dict[str, GoModule] | None:
        return next((versions for module, versions in self.go.items()
                     if go_escape(module) == escaped), None)

    async def _go(self, request: web.Request) -> web.StreamResponse:
        self._seen(request)
        escaped, _, tail = request.match_info["path"].partition("/@")
        versions = self._go_module(escaped) or {}
        if tail == "v/list":
            return web.Response(text="".join(f"{v}\n" for v in versions))
        if tail == "latest" and versions:
            latest = versions[list(versions)[-1]]
            return web.json_response({"Version": list(versions)[-1], "Time": latest.time})
        version, _, kind = tail.removeprefix("v/").rpartition(".")
        made = next((m for v, m in versions.items() if go_escape(v) == version), None)
        if made is None:
            return web.Response(status=404, text="not found")
        if kind == "info":
            return web.json_response({"Version": version, "Time": made.time})
        if kind in ("mod", "zip"):
            name = f"{escaped}@{version}.{kind}"
            return await self._send(request, name, made.mod if kind == "mod" else made.zip)
        return web.Response(status=404)

    async def _go_lookup(self, request: web.Request) -> web.Response:
        """A checksum database's answer for one module version (its note is not signed:
        the gateway reads the lines; the fake signs nothing a go could check)."""
        self._seen(request)
        escaped, _, version = request.match_info["line"].rpartition("@")
        made = next((m for v, m in (self._go_module(escaped) or {}).items()
                     if go_escape(v) == version), None)
        if made is None:
            return web.Response(status=404, text="not found")
        return web.Response(text=f"42\n{made.sum}\ngo.sum.test\n\u2014 go.sum.test AAAA\n")

    async def _config(self, request: web.Request) -> web.Response:
        self._seen(request)
        return web.json_response({"dl": f"{self.url}/crates/dl"})

    async def _crate_index(self, request: web.Request) -> web.Response:
        self._seen(request)
        name = request.match_info["path"].rpartition("/")[2]
        versions = self.crates.get(name)
        if versions is None:
            return web.Response(status=404)
        lines = [json.dumps({"name": name, "vers": v, "deps": [], "features": {},
                             "cksum": hashlib.sha256(d).hexdigest(), "yanked": False})
                 for v, d in versions.items()]
        return web.Response(text="\n".join(lines) + "\n")

    async def _crate(self, request: web.Request) -> web.StreamResponse:
        self._seen(request)
        name, version = request.match_info["name"], request.match_info["version"]
        data = self.crates.get(name, {}).get(version)
        if data is None:
            return web.Response(status=404)
        return await self._send(request, f"{name}-{version}", data)

    def artifact_hits(self) -> int:
        return sum(n for path, n in self.hits.items()
                   if path.startswith(("/files/", "/crates/dl/", "/maven/", "/npm/-/"))
                   and not path.endswith((".metadata", ".sha1", ".sha256", ".xml"))
                   or path.startswith("/go/") and path.endswith(".zip"))

    def stop(self) -> None:
        """Gone: every later request is refused (its port closed)."""
        if not self.stopped:
            self.stopped = True
            asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)

    def close(self) -> None:
        self.stalled.clear()
        try:
            self.stop()
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)

    def __enter__(self) -> PackageIndex:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
