"""The dependency cache's pure parts: where each upstream comes from, the phase's cache:
field, index pages read, the store's writes, bound and leftovers."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from runner.errors import InputError, PhaseFileError
from runner.gateway.cache import Mirrors
from runner.gateway.cache.crates import index_path
from runner.gateway.cache.pypi import files_of, normalized
from runner.gateway.cache.store import HashMismatch, Store
from runner.gateway.cache.upstreams import go_sumdb_for, upstream_for
from runner.phase.load import load_phase
from runner.records.outcome import Fetched
from runner.views.ticketview import fetched_line

SHA = "a" * 64


def test_the_phase_names_an_upstream_or_the_hosts_tool_does(monkeypatch, tmp_path) -> None:
    assert upstream_for("pypi", "https://mirror.example/simple") == "https://mirror.example/simple/"
    assert upstream_for("crates", "sparse+https://m.example/index/") == "https://m.example/index/"
    monkeypatch.setenv("PIP_INDEX_URL", "https://company.example/pypi/simple")
    assert upstream_for("pypi", None) == "https://company.example/pypi/simple/"
    monkeypatch.delenv("PIP_INDEX_URL")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(tmp_path / "none.conf"))
    from pip._internal.models.index import PyPI     # pip's own default, as pip says it
    assert upstream_for("pypi", None) == PyPI.simple_url.rstrip("/") + "/"


def test_cargo_says_its_upstream_by_its_source_replacement_or_its_index_folder(
        monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("CARGO_HOME", str(tmp_path))
    with pytest.raises(InputError, match="cache.mirrors.crates: cargo here has no source"):
        upstream_for("crates", None)
    folder = tmp_path / "registry" / "index" / "index.example.org-1949cf8c6b5b557f"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"dl": "https://dl.example.org/crates"}))
    assert upstream_for("crates", None) == "https://index.example.org/"
    (tmp_path / "config.toml").write_text(
        '[source.crates-io]\nreplace-with = "corp"\n\n'
        '[source.corp]\nregistry = "sparse+https://corp.example/cargo/"\n')
    assert upstream_for("crates", None) == "https://corp.example/cargo/"
    (tmp_path / "config.toml").write_text(
        '[source.crates-io]\nreplace-with = "corp"\n[source.corp]\n'
        'registry = "https://corp.example/git-index"\n')
    with pytest.raises(InputError, match="is a git index"):
        upstream_for("crates", None)


def test_the_phase_file_cache_field(tmp_path: Path) -> None:
    def load(cache: object) -> object:
        path = tmp_path / "phase.yaml"
        path.write_text(json.dumps({"name": "p", "cache": cache,
                                    "tickets": [{"id": "A", "agent": "script", "run": "true"}]}))
        return load_phase(path)

    phase = load({"mirrors": ["pypi", "crates"], "max": "2g", "dir": "deps"})
    assert phase.cache.upstreams == {"pypi": None, "crates": None}
    assert phase.cache.max_bytes == 2 << 30 and phase.cache.dir == (tmp_path / "deps")
    assert phase.needs_gateway
    assert load({"mirrors": {"pypi": "https://m.example/simple"}}).cache.upstreams == {
        "pypi": "https://m.example/simple"}
    with pytest.raises(PhaseFileError, match="cache.mirrors"):
        load({"mirrors": ["npmjs"]})
    with pytest.raises(PhaseFileError, match="cache.mirrors"):
        load({"mirrors": []})
    with pytest.raises(PhaseFileError, match="cache.max"):
        load({"mirrors": ["pypi"], "max": "lots"})
    with pytest.raises(PhaseFileError, match="cache.mirrors"):
        load({"mirrors": {"pypi": "ftp://x"}})
    with pytest.raises(PhaseFileError, match="gradle-wrapper.properties names: give it null"):
        load({"mirrors": {"gradle": "https://x.example/"}})
    assert load({"mirrors": ["go"], "go_sumdb": "off"}).cache.go_sumdb == "off"
    with pytest.raises(PhaseFileError, match="cache.go_sumdb"):
        load({"mirrors": ["go"], "go_sumdb": "x\ny"})
    with pytest.raises(PhaseFileError, match="cache.go_sumdb: .*mirrors no go"):
        load({"mirrors": ["pypi"], "go_sumdb": "sums.example"})


def test_project_pages_keep_only_files_with_a_published_sha256() -> None:
    page = {"files": [
        {"filename": "a-1.0-py3-none-any.whl", "url": "../../f/a.whl",
         "hashes": {"sha256": SHA}, "requires-python": ">=3.8", "core-metadata": True},
        {"filename": "a-0.9.tar.gz", "url": "https://x.example/a.tgz", "hashes": {"md5": "x"}},
        {"filename": "../evil", "url": "x", "hashes": {"sha256": SHA}},
        "junk"]}
    got = files_of(json.dumps(page).encode(), "application/vnd.pypi.simple.v1+json",
                   "https://up.example/simple/a/")
    assert got == [{"filename": "a-1.0-py3-none-any.whl", "sha256": SHA,
                    "requires-python": ">=3.8", "url": "https://up.example/f/a.whl"}]
    html = (f'<a href="../../p/b-2.0.tar.gz#sha256={SHA}" data-requires-python="&gt;=3.9">'
            'b</a><a href="../../p/b-1.0.tar.gz#md5=00">old</a>').encode()
    (entry,) = files_of(html, "text/html", "https://up.example/simple/b/")
    assert entry["url"] == "https://up.example/p/b-2.0.tar.gz"
    assert entry["requires-python"] == ">=3.9"
    assert normalized("Zope.Interface__x") == "zope-interface-x"
    assert files_of(b"{not json", "application/json", "https://x/") == []


def test_crate_index_paths_follow_cargos_layout() -> None:
    assert [index_path(n) for n in ("a", "ab", "abc", "Serde", "cfg-if")] == [
        "1/a", "2/ab", "3/a/abc", "se/rd/serde", "cf/g-/cfg-if"]


def test_the_store_keeps_only_verified_bytes_and_prunes_least_recent_first(
        tmp_path: Path) -> None:
    store = Store(tmp_path / "s").open()
    data = b"artifact"
    sha = hashlib.sha256(data).hexdigest()
    bad = store.writer(sha)
    bad.write(b"other bytes")
    with pytest.raises(HashMismatch):
        bad.commit()
    assert store.blob(sha) is None and not list(store.tmp.iterdir())
    good = store.writer(sha)
    good.write(data)
    assert good.commit().read_bytes() == data and store.blob(sha) is not None
    with pytest.raises(ValueError):
        store.writer("../" + "a" * 61)
    store.save_index("pypi", "alpha", b"page", {"etag": "x"})
    body, meta = store.load_index("pypi", "alpha")
    assert body == b"page" and meta["etag"] == "x" and meta["saved"] > 0
    with pytest.raises(ValueError):
        store.load_index("pypi", "../../etc")
    used = store.usage()
    assert used.artifacts == 1 and used.indexes == 1
    assert store.prune(0) == (2, used.bytes)
    assert store.usage().bytes == 0


def test_a_dead_writers_leftovers_go_when_a_store_opens(tmp_path: Path) -> None:
    store = Store(tmp_path / "s").open()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (store.tmp / f"{dead}-abc").write_bytes(b"half")
    live = store.writer(SHA)                         # ours, still writing
    Store(tmp_path / "s").open()
    assert [p.name for p in store.tmp.iterdir()] == [live.path.name]
    live.discard()


def test_a_tickets_fetches_read_in_one_line() -> None:
    line = fetched_line(Fetched(cache_requests=3, cache_bytes=2048, upstream_requests=1,
                                upstream_bytes=5 << 20, failed=1))
    assert line == "3 from the cache (2.0 KB), 1 from upstream (5.0 MB), 1 not served"
    assert (Fetched(1, 2, 3, 4, 5) + Fetched(1, 1, 1, 1, 1)) == Fetched(2, 3, 4, 5, 6)


def test_npm_versions_publish_sha512_or_sha1() -> None:
    import base64

    from runner.gateway.cache.npm import published

    digest = hashlib.sha512(b"x").digest()
    assert published({"integrity": "sha512-" + base64.b64encode(digest).decode()}) == (
        "sha512", digest.hex())
    assert published({"integrity": "sha1-zzz", "shasum": "a" * 40}) == ("sha1", "a" * 40)
    assert published({"integrity": "sha512-%%%"}) is None and published("x") is None


def test_the_private_home_points_each_tool_at_its_mirror() -> None:
    from runner.worker.gatewayenv import home_files, mirror_env

    files = dict(home_files(gateway=True, upstreams={
        "crates": "https://c.example/", "maven": "https://m.example/it's/"}))
    assert 'replace-with = "runner-cache"' in files["config.toml"]
    assert "'https://m.example/it\\'s/'" in files["init.gradle"]      # quoted for Groovy
    assert "<mirrorOf>central</mirrorOf>" in files[".m2/settings.xml"]
    mirrors = Mirrors(upstreams=dict.fromkeys(["pypi", "crates", "maven", "npm", "go"], ""),
                      store=Path("/nowhere"), max_bytes=1, go_sumdb="sums.example+ab12")
    env = mirror_env(mirrors)
    assert env["PIP_INDEX_URL"].endswith("/cache/pypi/simple/")
    assert env["GOPROXY"].endswith("/cache/go/") and env["GOSUMDB"] == "sums.example+ab12"
    assert env["GOMODCACHE"].startswith("/gradle-home/") and mirror_env(None) == {}
    assert env["CARGO_HOME"] == "/gradle-home" and "user.home" in env["MAVEN_OPTS"]
    assert env["npm_config_registry"].endswith("/cache/npm/")
    assert dict(home_files(gateway=False, upstreams={})) == {}


def test_maven_central_is_what_the_hosts_maven_says(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".m2").mkdir()
    (tmp_path / ".m2" / "settings.xml").write_text(
        '<settings xmlns="urn:example:settings"><mirrors><mirror>'
        "<id>corp</id><mirrorOf>central,other</mirrorOf><url>https://nexus.example/central/"
        "</url></mirror></mirrors></settings>")
    assert upstream_for("maven", None) == "https://nexus.example/central/"


def test_the_wrappers_distribution_is_where_the_wrapper_looks() -> None:
    from runner.worker.gradlewrapper import distribution, read_properties

    # The folder the real wrapper (Debian's Gradle 4.4.1) made for this URL.
    found = distribution("# made by gradle wrapper\n"
                         "distributionUrl=http\\://127.0.0.1\\:9/dist/gradle-4.4.1-bin.zip\n"
                         f"distributionSha256Sum={'A' * 64}\n")
    assert found is not None and found.url == "http://127.0.0.1:9/dist/gradle-4.4.1-bin.zip"
    assert found.home_path == ("wrapper/dists/gradle-4.4.1-bin/an19po564y3uyf5a7occlxmx6/"
                               "gradle-4.4.1-bin.zip")
    assert found.sha256 == "a" * 64
    assert distribution("distributionUrl=file\\:/x/gradle.zip\n") is None
    assert distribution("distributionUrl=https\\://h.example/g.zip\nzipStoreBase=PROJECT\n") is None
    assert read_properties("a\\:b = c\\=d\n! note\nempty\n") == {"a:b": "c=d", "empty": ""}


def test_go_names_are_escaped_and_hashed_as_go_sum_records_them(tmp_path) -> None:
    import zipfile

    from runner.gateway.cache.gomod import escape, hash_mod, hash_zip, sums_in, unescape

    assert escape("github.com/BurntSushi/toml") == "github.com/!burnt!sushi/toml"
    assert unescape("github.com/!burnt!sushi/toml") == "github.com/BurntSushi/toml"
    assert unescape("github.com/Burnt") is None and unescape("a/!1") is None
    # sha256 of "<sha256 of the file>  go.mod\n", base64 (the worker tests' real go agrees)
    mod = tmp_path / "go.mod"
    mod.write_text("module example.com/m\n")
    assert hash_mod(mod) == "h1:flS2VctbRrTv+sBE+VKgxx6hlkMGPVz9MGOmzMYFg3k="
    made = tmp_path / "m.zip"
    with zipfile.ZipFile(made, "w") as archive:       # its order and times do not count
        archive.writestr("example.com/m@v1.0.0/go.mod", "module example.com/m\n")
        archive.writestr("example.com/m@v1.0.0/a.go", "package m\n")
    again = tmp_path / "again.zip"
    with zipfile.ZipFile(again, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("example.com/m@v1.0.0/a.go", "package m\n")
        archive.writestr("example.com/m@v1.0.0/go.mod", "module example.com/m\n")
    assert hash_zip(made) == hash_zip(again) != hash_mod(mod)
    sums = sums_in("example.com/m v1.0.0 h1:AAA=\nexample.com/m v1.0.0/go.mod h1:BBB=\n"
                   "\ngo.sum.example\n\u2014 go.sum.example Az3g...\n")
    assert sums == {"example.com/m v1.0.0": "h1:AAA=", "example.com/m v1.0.0/go.mod": "h1:BBB="}


def test_the_go_proxy_and_checksum_database_are_the_phases_or_this_machines(
        monkeypatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")          # no go here to ask
    monkeypatch.delenv("GOPROXY", raising=False)
    monkeypatch.delenv("GOSUMDB", raising=False)
    with pytest.raises(InputError, match="cache.mirrors.go: no go here to say its GOPROXY"):
        upstream_for("go", None)
    monkeypatch.setenv("GOPROXY", "direct")
    with pytest.raises(InputError, match=r"GOPROXY here \(direct\) names no module proxy"):
        upstream_for("go", None)
    monkeypatch.setenv("GOPROXY", "https://goproxy.example/corp|https://other.example,direct")
    assert upstream_for("go", None) == "https://goproxy.example/corp/"
    assert go_sumdb_for(None) is None                   # nothing says one: go.sum alone
    monkeypatch.setenv("GOSUMDB", "sums.example+1234+AbCd")
    assert go_sumdb_for(None) == "sums.example+1234+AbCd" and go_sumdb_for("off") is None


def test_gateways_asking_at_once_for_an_artifact_share_one_download(tmp_path: Path) -> None:
    """Each ticket has its own gateway: two of them (and a second ask of the first) missing
    the same artifact at once fetch it upstream once, and find it later by the digest its
    index published (npm's sha512), not only by its sha256."""
    import asyncio

    import aiohttp
    from aiohttp import web

    from runner.gateway.cache.mirror import Mirror

    body = b"a tarball" * 1000
    sha512 = hashlib.sha512(body).hexdigest()
    hits = []

    async def tarball(_request: web.Request) -> web.StreamResponse:
        hits.append(1)
        response = web.StreamResponse()
        await response.prepare(_request)
        await asyncio.sleep(0.3)           # long enough for every asker to arrive meanwhile
        await response.write(body)
        return response

    async def scenario() -> list[tuple[Path, int]]:
        app = web.Application()
        app.router.add_get("/t.tgz", tarball)
        upstream = web.AppRunner(app)
        await upstream.setup()
        site = web.TCPSite(upstream, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{upstream.addresses[0][1]}/t.tgz"
        mirrors = Mirrors({"npm": url}, tmp_path / "store", 1 << 30)
        sessions = [aiohttp.ClientSession() for _ in range(2)]
        gateways = [Mirror(mirrors, s, lambda *_: None, {}) for s in sessions]
        try:
            return await asyncio.gather(*(
                g.artifact(sha512, url, "t", algorithm="sha512")
                for g in (gateways[0], gateways[1], gateways[0])))
        finally:
            for session in sessions:
                await session.close()
            await upstream.cleanup()

    got = asyncio.run(scenario())
    assert len(hits) == 1
    assert {path for path, _ in got} == {Store(tmp_path / "store").find("sha512", sha512)}
    assert sorted(fetched for _, fetched in got) == [0, 0, len(body)]
