"""Workers' own tools through the dependency cache, on real Docker: pip in a project image
built from the repo's Dockerfile (Debian's python3-pip), against the test's own index and
against the real Python package index; cargo (Debian's cargo-web) building a crate with
dependencies from the real crate registry, not --offline. Two workers at once fetch each
artifact upstream once; the next run fetches none; each ticket's record says so."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.package_index import PackageIndex, make_wheel
from tests.helpers import git, make_repo, run_json, write_phase

PIP_IMAGE = """FROM debian:bookworm-slim
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \\
      python3 python3-pip && rm -rf /var/lib/apt/lists/*
"""
CARGO_IMAGE = """FROM debian:bookworm-slim
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \\
      cargo-web libc6-dev && rm -rf /var/lib/apt/lists/*
"""


def pip_install(*packages: str) -> str:
    """A ticket's script: install through the worker's own pip (its index is the cache's
    mirror, from PIP_INDEX_URL), then record what it imported."""
    names = " ".join(packages)
    modules = ", ".join(p.split("==")[0].replace("-", "_") for p in packages)
    return (f"python3 -m pip install --no-cache-dir --disable-pip-version-check -q "
            f"--target /tmp/deps {names}\n"
            f"PYTHONPATH=/tmp/deps python3 -c 'import {modules}; print(\"ok\")' > installed.txt\n")


def fetch_events(run_dir: Path, ticket: str) -> list[dict]:
    path = run_dir / "transcripts" / f"{ticket}.jsonl"
    events = [json.loads(line) for line in path.read_text().splitlines()]
    return [e for e in events if e["kind"] == "cache"]


def artifacts_from_upstream(run_dir: Path, tickets: list[str]) -> list[str]:
    return [e["what"] for t in tickets for e in fetch_events(run_dir, t)
            if e["source"] == "upstream" and e["artifact"]]


def run_twice(phase_file: Path, repo: Path) -> list[dict]:
    """Two runs of the phase, one after the other (the second finds the cache warm)."""
    docs = []
    for _run in range(2):
        proc, doc = run_json("run", str(phase_file), "--repo", str(repo), "--allow-overlap")
        logs = Path(doc.get("run_dir", ".")) / "logs"
        assert proc.returncode == 0, proc.stderr + "".join(
            log.read_text()[-3000:] for log in logs.glob("*.log"))
        docs.append(doc)
    return docs


def two_tickets(script: str) -> list[dict]:
    return [{"id": "A", "agent": "script", "run": script},
            {"id": "B", "agent": "script", "run": script.replace("installed.txt", "b.txt")}]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "proj", {"README.md": "a project\n", "Dockerfile": PIP_IMAGE,
                                         "session.txt": secrets.token_hex(8)})


def test_two_workers_pip_install_through_the_cache_each_artifact_fetched_once(
        tmp_path: Path, repo: Path, worker_image: str) -> None:
    with PackageIndex() as index:
        names = {}
        for project, version, requires in (("alpha", "1.0", ("beta",)), ("beta", "2.0", ())):
            filename, wheel = make_wheel(project, version, requires)
            index.add_wheel(project, filename, wheel)
            names[project] = filename
        phase = {"name": "deps", "image": {"dockerfile": "proj/Dockerfile", "context": "proj"},
                 "concurrency": 2,
                 "cache": {"mirrors": {"pypi": f"{index.url}/simple/"},
                           "dir": str(tmp_path / "cache")},
                 "tickets": two_tickets(pip_install("alpha"))}
        phase_file = write_phase(tmp_path / "phase.yaml", phase)
        first, second = run_twice(phase_file, repo)
        # Each wheel once upstream, for two workers and two runs.
        assert {f"/files/{n}": 1 for n in names.values()}.items() <= index.hits.items()
    assert git(repo, "show", f"{first['target']}:installed.txt") == "ok"
    assert sorted(artifacts_from_upstream(Path(first["run_dir"]), ["A", "B"])) == sorted(
        f"{n} (sha256 {index_sha(index, n)[:12]}…)" for n in names.values())
    assert artifacts_from_upstream(Path(second["run_dir"]), ["A", "B"]) == []
    fetched = {t["id"]: t["fetched"] for t in second["tickets"]}
    assert all(f["cache_requests"] >= 2 and f["failed"] == 0 for f in fetched.values())
    log = (Path(second["run_dir"]) / "logs" / "A.log").read_text()
    assert f"runner: gateway: cache: pypi: {names['alpha']}" in log and "from the cache" in log


def index_sha(index: PackageIndex, filename: str) -> str:
    import hashlib

    data = next(f[filename] for f in index.wheels.values() if filename in f)
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def crates_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A cargo home of this machine's own cargo that has used the crate registry once: so
    runner reads the upstream from it, as it would from a user's."""
    home = tmp_path_factory.mktemp("cargo-home")
    probe = make_repo(tmp_path_factory.mktemp("probe") / "p", {
        "Cargo.toml": '[package]\nname = "probe"\nversion = "0.1.0"\nedition = "2021"\n\n'
                      '[dependencies]\nitoa = "1"\n', "src/main.rs": "fn main() {}\n"})
    subprocess.run(["cargo", "generate-lockfile"], cwd=probe, check=True, capture_output=True,
                   env={**os.environ, "CARGO_HOME": str(home)}, timeout=300)
    yield home


CRATE = {
    "Cargo.toml": '[package]\nname = "hello"\nversion = "0.1.0"\nedition = "2021"\n\n'
                  '[dependencies]\nitoa = "1"\ncfg-if = "1"\nhex = "0.4"\n',
    "src/main.rs": 'fn main() {\n    let mut buf = itoa::Buffer::new();\n'
                   '    println!("{} {}", buf.format(42), hex::encode("hi"));\n}\n',
    "Dockerfile": CARGO_IMAGE,
}


def test_a_crate_builds_with_its_dependencies_through_the_cache(
        tmp_path: Path, crates_home: Path, monkeypatch: pytest.MonkeyPatch,
        worker_image: str) -> None:
    monkeypatch.setenv("CARGO_HOME", str(crates_home))     # runner reads the upstream there
    repo = make_repo(tmp_path / "hello", {**CRATE, "session.txt": secrets.token_hex(8)})
    build = "cargo build -q && ./target/debug/hello > out.txt && rm -rf target\n"
    phase = {"name": "crate", "image": {"dockerfile": "hello/Dockerfile", "context": "hello"},
             "concurrency": 2, "resources": {"memory": "2g"},
             "cache": {"mirrors": ["crates"], "dir": str(tmp_path / "cache")},
             "tickets": [{"id": "A", "agent": "script", "run": build},
                         {"id": "B", "agent": "script", "run": build.replace("out.", "b.")}]}
    phase_file = write_phase(tmp_path / "phase.yaml", phase)
    first, second = run_twice(phase_file, repo)
    assert git(repo, "show", f"{first['target']}:out.txt") == "42 6869"
    got = artifacts_from_upstream(Path(first["run_dir"]), ["A", "B"])
    assert sorted(got) == sorted(set(got)) and {g.split()[0] for g in got} >= {
        "itoa", "cfg-if", "hex"}                      # each once, for both workers
    assert artifacts_from_upstream(Path(second["run_dir"]), ["A", "B"]) == []
    assert all(t["fetched"]["upstream_bytes"] < 100_000 for t in second["tickets"])


def test_the_real_python_package_index_through_the_cache(tmp_path: Path, repo: Path,
                                                         worker_image: str) -> None:
    """No upstream named: runner asks this machine's pip for its index."""
    phase = {"name": "pypi", "image": {"dockerfile": "proj/Dockerfile", "context": "proj"},
             "concurrency": 2,
             "cache": {"mirrors": ["pypi"], "dir": str(tmp_path / "cache")},
             "tickets": two_tickets(pip_install("six==1.16.0", "idna==3.7"))}
    phase_file = write_phase(tmp_path / "phase.yaml", phase)
    first, second = run_twice(phase_file, repo)
    got = artifacts_from_upstream(Path(first["run_dir"]), ["A", "B"])
    assert len(got) == 2 and len(set(got)) == 2        # six and idna, once each
    assert artifacts_from_upstream(Path(second["run_dir"]), ["A", "B"]) == []


GRADLE_BUILD = """apply plugin: 'java'
repositories { maven { url '%s' } }
dependencies { compile 'com.example:greeting:1.0' }
task deps { doLast {
  file('deps.txt').text = configurations.compile.files.collect { it.name }.join('\\n') + '\\n'
} }
"""


def test_gradle_resolves_through_the_cache_with_no_egress(tmp_path: Path,
                                                           jvm_image: str) -> None:
    """Debian's Gradle, its repository the phase's maven upstream: the private home's
    init.gradle sends it to the mirror; no egress: entry lets it out otherwise."""
    with PackageIndex() as index:
        base = "com/example/greeting/1.0/greeting-1.0"
        index.add_maven(f"{base}.pom", (
            "<project><modelVersion>4.0.0</modelVersion><groupId>com.example</groupId>"
            "<artifactId>greeting</artifactId><version>1.0</version></project>\n").encode())
        index.add_maven(f"{base}.jar", make_wheel("greeting", "1.0")[1])   # a zip will do
        upstream = f"{index.url}/maven/"
        repo = make_repo(tmp_path / "repo", {"build.gradle": GRADLE_BUILD % upstream,
                                             "settings.gradle": "",
                                             ".gitignore": ".gradle/\nbuild/\n"})
        resolve = "gradle --no-daemon --quiet deps\n"
        phase = write_phase(tmp_path / "phase.yaml", {
            "name": "gradle-cache", "image": jvm_image, "concurrency": 2,
            "cache": {"mirrors": {"maven": upstream}, "dir": str(tmp_path / "cache")},
            "tickets": [{"id": "A", "agent": "script", "run": resolve},
                        {"id": "B", "agent": "script",
                         "run": resolve + "mv deps.txt b-deps.txt\n"}]})
        first, second = run_twice(phase, repo)
        assert index.hits[f"/maven/{base}.jar"] == 1 and index.hits[f"/maven/{base}.pom"] == 1
    assert git(repo, "show", f"{first['target']}:deps.txt") == "greeting-1.0.jar"
    assert artifacts_from_upstream(Path(second["run_dir"]), ["A", "B"]) == []


POISON = r"""
m=http://127.0.0.1:3128/cache/pypi
code() { curl -s -o /dev/null -w '%{http_code}\n' "$@" || echo failed; }
curl -s $m/simple/alpha/ > page.json
code -X PUT --data-binary evil $m/files/alpha/SHA/FILE > put.txt
code -X POST --data-binary evil $m/files/alpha/SHA/FILE > post.txt
code $m/files/alpha/OTHER/FILE > other-key.txt
code --path-as-is "$m/files/alpha/SHA/../../../simple/alpha/" > dots.txt
code --path-as-is "$m/files/alpha/%2e%2e/SHA/FILE" > encoded-dots.txt
code $m/files/gamma/GSHA/GFILE > mismatch.txt
# Response splitting: a request line and a header with CR LF inside, sent raw.
raw() { timeout 10 bash -c 'exec 3<>/dev/tcp/127.0.0.1/3128; printf "%b" "$1" >&3; cat <&3' _ "$1"; }
raw 'GET /cache/pypi/simple/alpha/%0d%0aSet-Cookie:x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' \
  | head -1 > split-line.txt || true
raw 'GET /cache/pypi/files/alpha/SHA/FILE HTTP/1.1\r\nHost: x\r\nX-A: a\rSet-Cookie: b\r\nConnection: close\r\n\r\n' \
  | head -1 > split-header.txt || true
# A path chosen to forge what people read: a bidi override and an escape, raw and encoded.
raw 'GET /cache/pypi/evil\xe2\x80\xaemoc/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' \
  > /dev/null || true
code -g "$m/x%1b[31mred/" > /dev/null
"""
TAKE = r"""
m=http://127.0.0.1:3128/cache/pypi
curl -sf $m/files/alpha/SHA/FILE | sha256sum | cut -c1-64 > got-alpha.txt
curl -s -o /dev/null -w '%{http_code}\n' $m/files/gamma/GSHA/GFILE > got-gamma.txt
"""


def test_poisoning_from_inside_a_worker_changes_nothing_another_receives(
        tmp_path: Path, worker_image: str) -> None:
    with PackageIndex() as index:
        name, wheel = make_wheel("alpha", "1.0")
        sha = index.add_wheel("alpha", name, wheel)
        gname, gwheel = make_wheel("gamma", "1.0")
        gsha = index.add_wheel("gamma", gname, gwheel)
        index.tampered.add(gname)                    # what the upstream sends is not it
        fill = {"SHA": sha, "FILE": name, "GSHA": gsha, "GFILE": gname, "OTHER": "0" * 64}

        def script(text: str) -> str:
            for key, value in sorted(fill.items(), key=lambda kv: -len(kv[0])):
                text = text.replace(key, value)
            return text

        repo = make_repo(tmp_path / "repo", {"README.md": "x\n"})
        phase = write_phase(tmp_path / "phase.yaml", {
            "name": "poison", "image": worker_image,
            "cache": {"mirrors": {"pypi": f"{index.url}/simple/"}, "dir": str(tmp_path / "c")},
            "tickets": [{"id": "EVIL", "agent": "script", "run": script(POISON)},
                        {"id": "NEXT", "agent": "script", "run": script(TAKE),
                         "depends_on": ["EVIL"]}]})
        first, second = run_twice(phase, repo)
        assert index.hits[f"/files/{name}"] == 1     # the good file: fetched once, kept

    def shown(doc: dict, ticket: str, path: str) -> str:
        ref = next(t["ref"] for t in doc["tickets"] if t["id"] == ticket)
        return git(repo, "show", f"{ref}:{path}")

    assert shown(first, "EVIL", "put.txt") == shown(first, "EVIL", "post.txt") == "405"
    assert shown(first, "EVIL", "other-key.txt") == "404"
    assert shown(first, "EVIL", "dots.txt") == "404"
    assert shown(first, "EVIL", "encoded-dots.txt") == "404"
    assert shown(first, "EVIL", "mismatch.txt") == "502"
    assert "400" in shown(first, "EVIL", "split-line.txt") or \
        "404" in shown(first, "EVIL", "split-line.txt")
    assert "400" in shown(first, "EVIL", "split-header.txt")
    for doc in (first, second):                   # this run's next worker, and the next run's
        assert shown(doc, "NEXT", "got-alpha.txt") == sha
        assert shown(doc, "NEXT", "got-gamma.txt") == "502"
    log = (Path(first["run_dir"]) / "logs" / "EVIL.log").read_text()
    assert "PUT is refused: the cache is read-only to workers" in log
    # What the worker's forged paths became in runner's own lines: data, neutralised.
    said = "\n".join(line for line in log.splitlines() if line.startswith("runner: "))
    assert "red/" in said
    assert "\u202e" not in said and "\x1b" not in said
    assert "is not what its index published" in log


NPM_IMAGE = """FROM debian:bookworm-slim
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \\
      npm && rm -rf /var/lib/apt/lists/*
"""
NPM_INSTALL = """npm install --no-audit --no-fund --no-update-notifier --prefix /tmp/app @corp/util
node -e 'console.log(require("/tmp/app/node_modules/@corp/util").VERSION + " " +
  require("/tmp/app/node_modules/leftpad").VERSION)' > installed.txt
"""


def test_npm_installs_through_the_cache(tmp_path: Path, worker_image: str) -> None:
    """Debian's npm, its registry the mirror (npm_config_registry): a scoped package and
    its dependency, each tarball fetched upstream once for two workers and two runs."""
    with PackageIndex() as index:
        index.add_npm("leftpad", "1.0.0")
        index.add_npm("@corp/util", "2.0.0", {"leftpad": "^1.0.0"})
        repo = make_repo(tmp_path / "proj", {"Dockerfile": NPM_IMAGE,
                                             "session.txt": secrets.token_hex(8)})
        phase = write_phase(tmp_path / "phase.yaml", {
            "name": "npm", "image": {"dockerfile": "proj/Dockerfile", "context": "proj"},
            "concurrency": 2,
            "cache": {"mirrors": {"npm": f"{index.url}/npm/"}, "dir": str(tmp_path / "c")},
            "tickets": two_tickets(NPM_INSTALL)})
        first, second = run_twice(phase, repo)
        assert index.hits["/npm/-/leftpad-1.0.0.tgz"] == 1
        assert index.hits["/npm/-/@corp_util-2.0.0.tgz"] == 1
    assert git(repo, "show", f"{first['target']}:installed.txt") == "2.0.0 1.0.0"
    assert artifacts_from_upstream(Path(second["run_dir"]), ["A", "B"]) == []


@pytest.fixture(scope="module")
def wrapper_project(tmp_path_factory: pytest.TempPathFactory, jvm_image: str) -> dict:
    """A Gradle wrapper (gradlew, its jar) made by Debian's Gradle, and a distribution zip
    of that same Gradle as the wrapper would download it."""
    import docker
    import io as _io
    import tarfile
    import zipfile

    root = tmp_path_factory.mktemp("wrapper")
    client = docker.from_env()
    client.containers.run(jvm_image, ["bash", "-c", "touch settings.gradle && gradle --offline "
                                      "-q wrapper --gradle-version 4.4.1 && "
                                      "tar -chf /w/dist.tar -C /usr/share gradle"],
                          remove=True, network_mode="none", working_dir="/w",
                          environment={"HOME": "/tmp"}, user=f"{os.getuid()}:{os.getgid()}",
                          volumes={str(root): {"bind": "/w", "mode": "rw"}})
    zipped = _io.BytesIO()
    with tarfile.open(root / "dist.tar") as tar, \
            zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as dist:
        for member in tar.getmembers():
            name = "gradle-4.4.1" + member.name.removeprefix("gradle")
            if member.isdir():
                dist.writestr(name.rstrip("/") + "/", b"")
            elif member.isfile():
                dist.writestr(name, tar.extractfile(member).read())   # type: ignore[union-attr]
    return {"gradlew": (root / "gradlew").read_text(),
            "jar": (root / "gradle" / "wrapper" / "gradle-wrapper.jar").read_bytes(),
            "zip": zipped.getvalue()}


def test_the_gradle_wrappers_distribution_comes_from_the_cache(
        tmp_path: Path, jvm_image: str, wrapper_project: dict) -> None:
    """The wrapper finds its distribution in each worker's Gradle home (no egress: it could
    not download it), fetched upstream once for two workers and two runs."""
    with PackageIndex() as index:
        index.add_maven("dist/gradle-4.4.1-bin.zip", wrapper_project["zip"], ("sha256",))
        url = f"{index.url}/maven/dist/gradle-4.4.1-bin.zip".replace(":", "\\:")
        repo = make_repo(tmp_path / "repo", {
            "gradlew": wrapper_project["gradlew"], "settings.gradle": "",
            "build.gradle": "task hello { doLast { file('hello.txt').text = 'from '"
                            " + gradle.gradleVersion + '\\n' } }\n",
            ".gitignore": ".gradle/\nbuild/\n",
            "gradle/wrapper/gradle-wrapper.properties": (
                f"distributionUrl={url}\ndistributionBase=GRADLE_USER_HOME\n"
                "distributionPath=wrapper/dists\nzipStoreBase=GRADLE_USER_HOME\n"
                "zipStorePath=wrapper/dists\n")})
        (repo / "gradle" / "wrapper" / "gradle-wrapper.jar").write_bytes(wrapper_project["jar"])
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "the wrapper")
        hello = "bash ./gradlew -q hello\n"
        phase = write_phase(tmp_path / "phase.yaml", {
            "name": "wrapper", "image": jvm_image, "concurrency": 2,
            "cache": {"mirrors": ["gradle"], "dir": str(tmp_path / "c")},
            "tickets": [{"id": "A", "agent": "script", "run": hello},
                        {"id": "B", "agent": "script", "run": hello + "mv hello.txt b.txt\n"}]})
        first, _second = run_twice(phase, repo)
        assert index.hits["/maven/dist/gradle-4.4.1-bin.zip"] == 1
    assert git(repo, "show", f"{first['target']}:hello.txt") == "from 4.4.1"


def test_an_upstream_gone_mid_run_leaves_the_cache_serving(tmp_path: Path,
                                                           worker_image: str) -> None:
    """The index goes away once the first ticket's file is served: the next ticket gets the
    page and that file from the cache, and its log names the file that could not be had."""
    with PackageIndex() as index:
        name, wheel = make_wheel("alpha", "1.0")
        sha = index.add_wheel("alpha", name, wheel)
        bname, bwheel = make_wheel("alpha", "1.1")
        bsha = index.add_wheel("alpha", bname, bwheel)
        index.stop_after = f"/files/{name}"
        m = "http://127.0.0.1:3128/cache/pypi"
        first = (f"curl -sf {m}/simple/alpha/ > /dev/null\n"
                 f"curl -sf {m}/files/alpha/{sha}/{name} > /dev/null && echo ok > a.txt\n")
        second = (f"curl -sf {m}/simple/alpha/ > page.json\n"
                  f"curl -sf {m}/files/alpha/{sha}/{name} | sha256sum | cut -c1-64 > kept.txt\n"
                  f"curl -s -o /dev/null -w '%{{http_code}}\\n' "
                  f"{m}/files/alpha/{bsha}/{bname} > missing.txt\n")
        repo = make_repo(tmp_path / "repo", {"README.md": "x\n"})
        phase = write_phase(tmp_path / "phase.yaml", {
            "name": "gone", "image": worker_image,
            "cache": {"mirrors": {"pypi": f"{index.url}/simple/"}, "dir": str(tmp_path / "c")},
            "tickets": [{"id": "A", "agent": "script", "run": first},
                        {"id": "B", "agent": "script", "run": second, "depends_on": ["A"]}]})
        proc, doc = run_json("run", str(phase), "--repo", str(repo))
        assert proc.returncode == 0, proc.stderr
        assert index.stopped
    assert git(repo, "show", f"{doc['target']}:kept.txt") == sha
    assert git(repo, "show", f"{doc['target']}:missing.txt") == "502"
    assert len(json.loads(git(repo, "show", f"{doc['target']}:page.json"))["files"]) == 2
    log = (Path(doc["run_dir"]) / "logs" / "B.log").read_text()
    assert f"{bname} (sha256 {bsha[:12]}…) is not in the cache and could not be fetched" in log
    assert "served the index of alpha saved" in log
    fetched = next(t["fetched"] for t in doc["tickets"] if t["id"] == "B")
    assert fetched["failed"] == 1 and fetched["cache_requests"] == 2


GO_IMAGE = """FROM debian:bookworm-slim
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \\
      golang-go && rm -rf /var/lib/apt/lists/*
"""
GO_APP = {"go.mod": "module example.com/app\n\ngo 1.19\n\nrequire example.com/Shout v1.0.0\n",
          "main.go": 'package main\n\nimport (\n\t"fmt"\n\n\t"example.com/Shout"\n)\n\n'
                     'func main() { fmt.Println(shout.Loud("hi")) }\n',
          "Dockerfile": GO_IMAGE}
GO_BUILD = "CGO_ENABLED=0 go build -o /tmp/app . && /tmp/app > out.txt\n"
# A module the base's go.sum does not list: the gateway checks it by the checksum database's
# lookup; the worker's go is told to skip that database (the test's signs nothing).
GO_GET = ("GONOSUMDB=example.com/extra go get example.com/extra@v1.1.0\n"
          "CGO_ENABLED=0 go build -o /tmp/app . && /tmp/app > b.txt\n")


def test_go_builds_with_its_modules_through_the_cache(tmp_path: Path, worker_image: str) -> None:
    """Debian's go, GOPROXY the mirror: a module of an upper-case path the base's go.sum
    lists (go, checking it, agrees with the gateway's hash), and a module added by go get
    (its go.sum line written by go from what the gateway checked by the database); each zip
    fetched upstream once for two workers and two runs."""
    with PackageIndex() as index:
        shout = index.add_go("example.com/Shout", "v1.0.0", {
            "shout.go": 'package shout\n\nimport "strings"\n\n'
                        'func Loud(s string) string { return strings.ToUpper(s) + "!" }\n'})
        extra = index.add_go("example.com/extra", "v1.1.0", {"extra.go": "package extra\n"})
        repo = make_repo(tmp_path / "app", {**GO_APP, "go.sum": shout.sum,
                                            "session.txt": secrets.token_hex(8)})
        phase = write_phase(tmp_path / "phase.yaml", {
            "name": "go", "image": {"dockerfile": "app/Dockerfile", "context": "app"},
            "concurrency": 2,
            "cache": {"mirrors": {"go": f"{index.url}/go/"}, "go_sumdb": "go.sum.test",
                      "dir": str(tmp_path / "c")},
            "tickets": [{"id": "A", "agent": "script", "run": GO_BUILD},
                        {"id": "B", "agent": "script", "run": GO_GET}]})
        first, second = run_twice(phase, repo)
        assert index.hits["/go/example.com/!shout/@v/v1.0.0.zip"] == 1
        assert index.hits["/go/example.com/extra/@v/v1.1.0.zip"] == 1
    assert git(repo, "show", f"{first['target']}:out.txt") == "HI!"
    assert git(repo, "show", f"{first['target']}:b.txt") == "HI!"
    assert extra.sum.splitlines()[0] in git(repo, "show", f"{first['target']}:go.sum")
    assert artifacts_from_upstream(Path(second["run_dir"]), ["A", "B"]) == []
