"""The dependency cache on the gateway, from a worker's side of its socket (no Docker): each
artifact fetched upstream once and served by its published hash, index pages revalidated
every time, nothing a worker sends stored, an upstream gone answered from the cache, a
runner killed mid-download leaving nothing half-written to serve, the size bound kept."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2 as httpx
import pytest

from runner.gateway import SOCKET_NAME, Caller, Fetch, Gateway
from runner.gateway.cache import Mirrors
from runner.gateway.cache.store import Store
from runner.records.ledger import Ledger, default_prices
from tests.fakes.package_index import PackageIndex, make_wheel
from tests.integration.test_gateway import KEY

GATEWAY_URL = "http://127.0.0.1:3128"


class Fetches:
    def __init__(self) -> None:
        self.seen: list[Fetch] = []

    def caller(self, ticket: str) -> Caller:
        return Caller(ticket, None, lambda _: None, lambda _: None, self.seen.append)


@pytest.fixture
def index() -> Iterator[PackageIndex]:
    with PackageIndex() as upstream:
        yield upstream


def mirrors(index: PackageIndex, store: Path, max_bytes: int = 1 << 30) -> Mirrors:
    return Mirrors(upstreams={"pypi": f"{index.url}/simple/", "crates": f"{index.url}/crates/"},
                   store=store, max_bytes=max_bytes, served_at=GATEWAY_URL)


def gateway(tmp_path: Path, index: PackageIndex, store: Path, **kw: object) -> Gateway:
    return serving(mirrors(index, store, **kw))


def serving(mirrored: Mirrors) -> Gateway:
    return Gateway(Path(tempfile.mkdtemp(prefix="gw", dir="/tmp")),     # sun_path is short
                   ledger=Ledger(prices=default_prices()), egress=[], api_key=KEY,
                   mirrors=mirrored)


def worker(sock: Path) -> httpx.Client:
    return httpx.Client(base_url="http://127.0.0.1:3128", timeout=30,
                        transport=httpx.HTTPTransport(uds=str(sock)))


def file_url(page: dict, filename: str) -> str:
    entry = next(f for f in page["files"] if f["filename"] == filename)
    return "/cache/pypi/simple/x/" + entry["url"]        # relative to the project page


def test_each_artifact_is_fetched_upstream_once_for_every_worker_and_run(
        tmp_path: Path, index: PackageIndex) -> None:
    name, wheel = make_wheel("alpha", "1.0")
    sha = index.add_wheel("alpha", name, wheel)
    store, fetches = tmp_path / "store", Fetches()
    for _run in range(2):
        with gateway(tmp_path, index, store) as gw, \
                gw.serve(fetches.caller("A")) as a, gw.serve(fetches.caller("B")) as b:
            def install(sock: Path) -> bytes:
                with worker(sock / SOCKET_NAME) as http:
                    page = http.get("/cache/pypi/simple/Alpha/").json()   # any spelling
                    assert [f["hashes"]["sha256"] for f in page["files"]] == [sha]
                    assert "core-metadata" not in page["files"][0]
                    got = http.get(httpx.URL(
                        "http://127.0.0.1:3128/cache/pypi/simple/alpha/").join(
                        page["files"][0]["url"]))
                    assert got.status_code == 200
                    return got.content
            with ThreadPoolExecutor(4) as pool:          # four workers at once
                got = list(pool.map(install, [a, b, a, b]))
        assert all(hashlib.sha256(g).hexdigest() == sha for g in got)
    assert index.hits[f"/files/{name}"] == 1             # once, for both runs
    assert index.hits["/simple/alpha/"] >= 2             # index pages: asked again
    sources = [f.source for f in fetches.seen if f.artifact]
    assert sources.count("upstream") == 1 and sources.count("cache") == 7
    assert Store(store).blob(sha) is not None


def test_a_worker_cannot_put_bytes_in_the_cache(tmp_path: Path, index: PackageIndex) -> None:
    """PUT/POST, a path at another artifact's key, dot-segments, a hash no index published,
    bytes that do not match their hash, a response-splitting header: none stores anything
    another worker would be served."""
    name, wheel = make_wheel("beta", "2.0")
    sha = index.add_wheel("beta", name, wheel)
    other_name, other = make_wheel("gamma", "1.0")
    other_sha = index.add_wheel("gamma", other_name, other)
    index.tampered.add(other_name)                       # the upstream sends bad bytes
    store, fetches = tmp_path / "store", Fetches()
    with gateway(tmp_path, index, store) as gw, gw.serve(fetches.caller("EVIL")) as evil:
        with worker(evil / SOCKET_NAME) as http:
            page_url = "/cache/pypi/simple/beta/"
            http.get(page_url)
            target = f"/cache/pypi/files/beta/{sha}/{name}"
            for method in ("PUT", "POST", "DELETE", "PATCH"):
                assert http.request(method, target, content=b"evil").status_code == 405
            # Another artifact's key, with the bytes and name of a file the worker chose.
            assert http.get(f"/cache/pypi/files/beta/{'0' * 64}/{name}").status_code == 404
            assert http.get(f"/cache/pypi/files/beta/{other_sha}/{name}").status_code == 404
            for path in (f"/cache/pypi/files/beta/{sha}/../../{name}",
                         f"/cache/pypi/files/beta/%2e%2e/{sha}/{name}",
                         "/cache/pypi/simple/../../etc/passwd/",
                         "/cache/pypi/simple/%2e%2e/", "/cache/crates/index/../config.json",
                         "/cache/crates/dl/serde/1.0/../../x/download"):
                response = http.get(path)
                assert response.status_code == 404, (path, response.text)
            # A header meant to split the response or poison a key: data, never stored.
            assert http.get(target, headers={"X-Inject": "a\tb", "Host": "evil"}
                            ).status_code == 200
            # The upstream's bad bytes: refused, not kept.
            http.get("/cache/pypi/simple/gamma/")
            bad = http.get(f"/cache/pypi/files/gamma/{other_sha}/{other_name}")
            assert bad.status_code == 502 and "not what its index published" in bad.text
    assert Store(store).blob(other_sha) is None
    with gateway(tmp_path, index, store) as gw, gw.serve(fetches.caller("NEXT")) as nxt:
        with worker(nxt / SOCKET_NAME) as http:
            assert http.get(f"/cache/pypi/files/beta/{sha}/{name}").content == wheel
    refused = [f for f in fetches.seen if f.source == "refused"]
    assert refused and all(f.reason for f in refused)
    assert not list((store / "tmp").iterdir())


def test_an_upstream_gone_is_answered_from_the_cache_and_says_what_is_missing(
        tmp_path: Path, index: PackageIndex) -> None:
    kept_name, kept = make_wheel("delta", "1.0")
    kept_sha = index.add_wheel("delta", kept_name, kept)
    new_name, new = make_wheel("delta", "1.1")
    new_sha = index.add_wheel("delta", new_name, new)
    store, fetches = tmp_path / "store", Fetches()
    with gateway(tmp_path, index, store) as gw, gw.serve(fetches.caller("T")) as sock:
        with worker(sock / SOCKET_NAME) as http:
            assert http.get("/cache/pypi/simple/delta/").status_code == 200
            assert http.get(f"/cache/pypi/files/delta/{kept_sha}/{kept_name}").content == kept
            index.stop()                                 # mid-run
            page = http.get("/cache/pypi/simple/delta/")
            assert page.status_code == 200 and len(page.json()["files"]) == 2   # last good
            assert http.get(f"/cache/pypi/files/delta/{kept_sha}/{kept_name}").content == kept
            missing = http.get(f"/cache/pypi/files/delta/{new_sha}/{new_name}")
            assert missing.status_code == 502
            assert f"{new_name} (sha256 {new_sha[:12]}…) is not in the cache and could not " \
                   "be fetched" in missing.text
            unknown = http.get("/cache/pypi/simple/epsilon/")
            assert unknown.status_code == 502 and "the cache has none" in unknown.text
    stale = [f for f in fetches.seen if f.source == "stale"]
    assert stale and "the upstream could not be reached" in stale[0].reason
    assert [f.what for f in fetches.seen if f.source == "failed"] == [
        f"/cache/pypi/files/delta/{new_sha}/{new_name}", "/cache/pypi/simple/epsilon/"]


def test_an_html_index_is_read_and_served_as_json(tmp_path: Path) -> None:
    with PackageIndex(html=True) as index:
        name, wheel = make_wheel("zeta", "3.0")
        sha = index.add_wheel("zeta", name, wheel)
        with gateway(tmp_path, index, tmp_path / "store") as gw, \
                gw.serve(Fetches().caller("T")) as sock, worker(sock / SOCKET_NAME) as http:
            page = http.get("/cache/pypi/simple/zeta/")
            assert page.headers["content-type"] == "application/vnd.pypi.simple.v1+json"
            assert page.json()["files"][0]["hashes"] == {"sha256": sha}
            assert http.get(f"/cache/pypi/files/zeta/{sha}/{name}").content == wheel


def test_crates_are_served_by_the_cksum_their_index_publishes(tmp_path: Path,
                                                              index: PackageIndex) -> None:
    sha = index.add_crate("tinycrate", "0.1.0", b"crate bytes")
    index.add_crate("tinycrate", "0.2.0", b"other bytes")
    index.tampered.add("tinycrate-0.2.0")
    store = tmp_path / "store"
    with gateway(tmp_path, index, store) as gw, gw.serve(Fetches().caller("T")) as sock, \
            worker(sock / SOCKET_NAME) as http:
        config = http.get("/cache/crates/index/config.json").json()
        assert config == {"dl": f"{GATEWAY_URL}/cache/crates/dl"}
        lines = http.get("/cache/crates/index/ti/ny/tinycrate").text.splitlines()
        assert len(lines) == 2
        assert http.get("/cache/crates/index/xx/yy/tinycrate").status_code == 404
        assert http.get("/cache/crates/dl/tinycrate/0.1.0/download").content == b"crate bytes"
        assert http.get("/cache/crates/dl/tinycrate/0.2.0/download").status_code == 502
        assert http.get("/cache/crates/dl/tinycrate/9.9.9/download").status_code == 404
        assert http.get("/cache/crates/dl/tinycrate/0.1.0/download").content == b"crate bytes"
    assert index.hits["/crates/dl/tinycrate/0.1.0/download"] == 1
    assert Store(store).blob(sha) is not None


def test_an_echoing_upstream_hands_no_key_and_is_never_sent_one(tmp_path: Path,
                                                                 index: PackageIndex) -> None:
    index.echo = True
    name, wheel = make_wheel("eta", "1.0")
    index.add_wheel("eta", name, wheel)
    with gateway(tmp_path, index, tmp_path / "store") as gw, \
            gw.serve(Fetches().caller("T")) as sock, worker(sock / SOCKET_NAME) as http:
        page = http.get("/cache/pypi/simple/eta/", headers={"x-api-key": KEY,
                                                            "Authorization": KEY})
    assert page.status_code == 200
    assert KEY not in page.text and KEY not in repr(dict(page.headers))
    assert not any(KEY in repr(seen) for seen in index.headers_seen)   # nothing forwarded


def test_the_cache_is_bounded_least_recently_used_first(tmp_path: Path,
                                                         index: PackageIndex) -> None:
    shas = []
    for number in range(4):
        name, wheel = make_wheel(f"big{number}", "1.0", padding=100_000)
        shas.append((index.add_wheel(f"big{number}", name, wheel), name))
    store = tmp_path / "store"
    with gateway(tmp_path, index, store, max_bytes=250_000) as gw, \
            gw.serve(Fetches().caller("T")) as sock, worker(sock / SOCKET_NAME) as http:
        for number, (sha, name) in enumerate(shas):
            http.get(f"/cache/pypi/simple/big{number}/")
            assert http.get(f"/cache/pypi/files/big{number}/{sha}/{name}").status_code == 200
            time.sleep(0.05)                              # distinct mtimes
    assert Store(store).usage().bytes <= 250_000
    assert Store(store).blob(shas[-1][0]) is not None and Store(store).blob(shas[0][0]) is None


def test_a_runner_killed_mid_download_leaves_nothing_half_written(
        tmp_path: Path, index: PackageIndex) -> None:
    name, wheel = make_wheel("theta", "1.0", padding=200_000)
    sha = index.add_wheel("theta", name, wheel)
    index.stalled.add(name)                              # half of it sent, then nothing
    store = tmp_path / "store"
    script = textwrap.dedent(f"""
        import sys, tempfile, time, httpx2 as httpx
        from pathlib import Path
        from runner.gateway import Caller, Gateway, SOCKET_NAME
        from runner.gateway.cache import Mirrors
        from runner.records.ledger import Ledger
        m = Mirrors({{"pypi": "{index.url}/simple/"}}, Path({str(store)!r}), 1 << 30, "")
        with Gateway(Path(tempfile.mkdtemp(dir='/tmp')), ledger=Ledger(prices={{}}), egress=[],
                     mirrors=m) as gw, gw.serve(Caller("T", None, print, print)) as d:
            http = httpx.Client(base_url="http://x", timeout=600,
                                transport=httpx.HTTPTransport(uds=str(d / SOCKET_NAME)))
            http.get("/cache/pypi/simple/theta/")
            print("asking", flush=True)
            http.get("/cache/pypi/files/theta/{sha}/{name}")
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).parents[2])
    assert proc.stdout is not None and proc.stdout.readline().strip() == "asking"
    deadline = time.monotonic() + 30
    while not any(p.stat().st_size for p in (store / "tmp").iterdir()):
        assert time.monotonic() < deadline, "the download never began"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert Store(store).blob(sha) is None                # nothing under the artifact's name
    assert list((store / "tmp").iterdir())               # what it was writing: left there
    index.stalled.clear()
    with gateway(tmp_path, index, store) as gw, gw.serve(Fetches().caller("T")) as sock, \
            worker(sock / SOCKET_NAME) as http:
        http.get("/cache/pypi/simple/theta/")
        got = http.get(f"/cache/pypi/files/theta/{sha}/{name}")
    assert hashlib.sha256(got.content).hexdigest() == sha
    assert not list((store / "tmp").iterdir())           # the dead writer's file removed


def test_a_maven_repository_is_mirrored_by_its_published_checksums(
        tmp_path: Path, index: PackageIndex) -> None:
    base = "com/example/lib/1.0/lib-1.0"
    index.add_maven(f"{base}.jar", b"jar bytes", ("sha1",))
    index.add_maven(f"{base}.pom", b"<project/>", ("sha256", "sha1"))
    index.add_maven("com/example/bad/1.0/bad-1.0.jar", b"bad", ("sha1",))
    index.tampered.add("com/example/bad/1.0/bad-1.0.jar")
    index.add_maven("com/example/bare/1.0/bare-1.0.jar", b"bare", ())
    index.add_maven("com/example/lib/maven-metadata.xml", b"<metadata>1</metadata>", ())
    store = tmp_path / "store"
    upstreams = {"maven": f"{index.url}/maven/"}
    with serving(Mirrors(upstreams, store, 1 << 30, GATEWAY_URL)) as gw, \
            gw.serve(Fetches().caller("T")) as sock, worker(sock / SOCKET_NAME) as http:
        for _ in range(3):
            assert http.get(f"/cache/maven/{base}.jar").content == b"jar bytes"
        # As a JVM tool asks, through the gateway as its proxy: the gateway's own address.
        proxied = http.get(f"{GATEWAY_URL}/cache/maven/{base}.pom",
                           extensions={"target": f"{GATEWAY_URL}/cache/maven/{base}.pom".encode()})
        assert proxied.content == b"<project/>"
        assert http.get(f"/cache/maven/{base}.jar.sha1").text == hashlib.sha1(
            b"jar bytes").hexdigest()
        assert http.get("/cache/maven/com/example/bad/1.0/bad-1.0.jar").status_code == 502
        bare = http.get("/cache/maven/com/example/bare/1.0/bare-1.0.jar")
        assert bare.status_code == 404 and "has no checksum" in bare.text
        assert http.get("/cache/maven/com/example/../../x.jar").status_code == 404
        assert http.get("/cache/maven/com/example/lib/maven-metadata.xml").status_code == 200
        index.maven["com/example/lib/maven-metadata.xml"] = b"<metadata>2</metadata>"
        assert http.get("/cache/maven/com/example/lib/maven-metadata.xml").content == \
            b"<metadata>2</metadata>"                     # revalidated, never frozen
    assert index.hits[f"/maven/{base}.jar"] == 1
    assert index.hits["/maven/com/example/lib/maven-metadata.xml"] == 2
    assert Store(store).blob(hashlib.sha256(b"jar bytes").hexdigest()) is not None


def test_npm_documents_point_at_the_mirror_and_tarballs_are_checked(
        tmp_path: Path, index: PackageIndex) -> None:
    good = index.add_npm("leftpad", "1.0.0")
    index.add_npm("@corp/util", "2.0.0", {"leftpad": "^1.0.0"})
    index.add_npm("broken", "0.1.0")
    index.tampered.add("broken-0.1.0.tgz")
    store = tmp_path / "store"
    upstreams = {"npm": f"{index.url}/npm/"}
    for _run in range(2):
        with serving(Mirrors(upstreams, store, 1 << 30, GATEWAY_URL)) as gw, \
                gw.serve(Fetches().caller("T")) as sock, worker(sock / SOCKET_NAME) as http:
            doc = http.get("/cache/npm/leftpad",
                           headers={"Accept": "application/vnd.npm.install-v1+json"}).json()
            tarball = doc["versions"]["1.0.0"]["dist"]["tarball"]
            assert tarball == f"{GATEWAY_URL}/cache/npm/-/leftpad/1.0.0.tgz"
            assert http.get(tarball.removeprefix(GATEWAY_URL)).content == good
            scoped = http.get("/cache/npm/@corp%2futil").json()
            assert scoped["dist-tags"] == {"latest": "2.0.0"}
            assert http.get("/cache/npm/-/@corp/util/2.0.0.tgz").status_code == 200
            assert http.get("/cache/npm/broken").status_code == 200
            assert http.get("/cache/npm/-/broken/0.1.0.tgz").status_code == 502
            assert http.get("/cache/npm/-/leftpad/9.9.9.tgz").status_code == 404
            assert http.get("/cache/npm/../etc/passwd").status_code == 404
    assert index.hits["/npm/-/leftpad-1.0.0.tgz"] == 1
    assert index.hits["/npm/-/@corp_util-2.0.0.tgz"] == 1


def test_go_modules_are_served_by_the_hash_go_sum_or_the_checksum_database_records(
        tmp_path: Path, index: PackageIndex) -> None:
    """A module the base's go.sum lists is checked by that line; one it does not, by the
    checksum database's lookup through the upstream proxy — and by nothing when the run has
    no database. Bytes that are not what was recorded are neither kept nor served."""
    from runner.gateway.cache.gomod import sums_in

    listed = index.add_go("example.com/Shout", "v1.0.0", {"shout.go": "package shout\n"})
    extra = index.add_go("example.com/extra", "v1.1.0", {"extra.go": "package extra\n"})
    bad_sum = index.add_go("example.com/bad", "v0.1.0", {"bad.go": "package bad\n"}).sum
    # The upstream then serves other contents under that version (its zip's bytes alone
    # are not what is checked: go's hash is of the files in it).
    index.add_go("example.com/bad", "v0.1.0", {"bad.go": "package bad // evil\n"})
    store = tmp_path / "store"
    with_db = Mirrors({"go": f"{index.url}/go/"}, store, 1 << 30, GATEWAY_URL,
                      go_sumdb="go.sum.test+0000+AAAA", go_sums=sums_in(listed.sum + bad_sum))
    for _run in range(2):
        with serving(with_db) as gw, gw.serve(Fetches().caller("T")) as sock, \
                worker(sock / SOCKET_NAME) as http:
            assert http.get("/cache/go/example.com/!shout/@v/list").text == "v1.0.0\n"
            info = http.get("/cache/go/example.com/!shout/@v/v1.0.0.info").json()
            assert info["Version"] == "v1.0.0"
            assert http.get("/cache/go/example.com/!shout/@v/v1.0.0.mod").content == listed.mod
            assert http.get("/cache/go/example.com/!shout/@v/v1.0.0.zip").content == listed.zip
            assert http.get("/cache/go/example.com/extra/@v/v1.1.0.zip").content == extra.zip
            refused = http.get("/cache/go/example.com/bad/@v/v0.1.0.zip")
            assert refused.status_code == 502 and "is not what its index published" in \
                refused.text
            assert http.get("/cache/go/sumdb/go.sum.test/supported").status_code == 200
            assert http.get("/cache/go/sumdb/other.db/supported").status_code == 404
            assert http.get("/cache/go/example.com/%21shout/@v/list").status_code == 200
            for path in ("/cache/go/example.com/Shout/@v/list",          # not escaped
                         "/cache/go/example.com/!shout/@v/../../x.zip",
                         "/cache/go/example.com/%2e%2e/@v/list",
                         "/cache/go/example.com/!shout/@v/v1.0.0.exe",
                         "/cache/go/sumdb/go.sum.test/lookup/../../x@v1",
                         "/cache/go/sumdb/go.sum.test/tile/8/0/../../x"):
                assert http.get(path).status_code == 404, path
    assert index.hits["/go/example.com/!shout/@v/v1.0.0.zip"] == 1      # once, two runs
    assert index.hits["/go/example.com/extra/@v/v1.1.0.zip"] == 1
    assert index.hits["/go/sumdb/go.sum.test/lookup/example.com/extra@v1.1.0"] == 1
    assert index.hits["/go/example.com/bad/@v/v0.1.0.zip"] == 2         # never kept

    no_db = Mirrors({"go": f"{index.url}/go/"}, tmp_path / "other", 1 << 30, GATEWAY_URL)
    with serving(no_db) as gw, gw.serve(Fetches().caller("T")) as sock, \
            worker(sock / SOCKET_NAME) as http:
        said = http.get("/cache/go/example.com/extra/@v/v1.1.0.mod")
        assert said.status_code == 404 and "cache.go_sumdb" in said.text
