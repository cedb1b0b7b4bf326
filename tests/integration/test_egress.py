"""Egress through the gateway, with real tools in workers whose network is `none`: a real
Gradle build (Debian's 4.4.1) resolves a dependency from a Maven repository this test serves
on the host's 127.0.0.1 when the phase lists that address (on this machine's engine and on a
remote one), and fails, with the gateway's refusal in its log, when it does not; curl and
git to hosts no entry lists get 403; a listed name that resolves to loopback is refused, the
same address listed as an IP is reached."""

from __future__ import annotations

import functools
import json
import threading
import zipfile
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.helpers import git, make_repo, run_json, runner_cli, write_phase

POM = ("<project><modelVersion>4.0.0</modelVersion><groupId>com.example</groupId>"
       "<artifactId>greeting</artifactId><version>1.0</version></project>\n")
ARTIFACT = "maven/com/example/greeting/1.0/greeting-1.0"
BUILD_GRADLE = """apply plugin: 'java'
repositories { maven { url 'http://127.0.0.1:%d/maven' } }
dependencies { compile 'com.example:greeting:1.0' }
task deps { doLast {
  file('deps.txt').text = configurations.compile.files.collect { it.name }.join('\\n') + '\\n'
} }
"""
RESOLVE = "gradle --no-daemon --quiet deps"
PROBE = """
code() { curl -s -o /dev/null -w '%{http_code}' "$@" || true; }
code http://example.com/ > unlisted-http.txt
curl -s https://example.com/ > /dev/null 2> https.err && echo 0 > unlisted-https.txt \
  || echo $? > unlisted-https.txt
code --noproxy '' -x http://127.0.0.1:3128 http://localhost:PORT/ARTIFACT.pom > by-name.txt
code --noproxy '' -x http://127.0.0.1:3128 http://127.0.0.1:PORT/ARTIFACT.pom > by-ip.txt
git ls-remote http://example.com/x.git 2> git.err || echo $? > git-exit.txt
# A host name the worker chose to forge what people read: a bidi override, an escape.
forge() { timeout 10 bash -c 'exec 3<>/dev/tcp/127.0.0.1/3128; printf "$1" >&3; cat <&3' _ "$1"; }
forge 'CONNECT evil\\xe2\\x80\\xaemoc.example:443 HTTP/1.0\\r\\n\\r\\n' > forged.txt || true
forge 'GET http://x\\x1b[31m.example/ HTTP/1.0\\r\\n\\r\\n' >> forged.txt || true
"""


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def maven(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, list[str]]]:
    """A Maven repository on 127.0.0.1 holding com.example:greeting:1.0 (a jar and its
    pom, made here); yields its port and the paths asked for."""
    root = tmp_path_factory.mktemp("maven")
    (root / ARTIFACT).parent.mkdir(parents=True)
    (root / f"{ARTIFACT}.pom").write_text(POM)
    with zipfile.ZipFile(root / f"{ARTIFACT}.jar", "w") as jar:
        jar.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\n")
        jar.writestr("greeting.txt", "hello from the test's repository\n")
    asked: list[str] = []

    class Handler(_Quiet):
        def send_head(self):  # type: ignore[no-untyped-def]
            asked.append(self.path)
            return super().send_head()

    server = ThreadingHTTPServer(("127.0.0.1", 0),
                                 functools.partial(Handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], asked
    server.shutdown()
    server.server_close()


def _run(root: Path, image: str, port: int, egress: list[str],
         *flags: str) -> tuple[Path, object, dict]:
    repo = make_repo(root / "repo", {"build.gradle": BUILD_GRADLE % port, "settings.gradle": "",
                                     ".gitignore": ".gradle/\nbuild/\n"})
    probe = PROBE.replace("PORT", str(port)).replace("ARTIFACT", ARTIFACT)
    phase = write_phase(root / "egress.yaml", {
        "name": "egress", "image": image, "egress": egress, "concurrency": 2,
        "tickets": [{"id": "G", "agent": "script", "run": RESOLVE, "paths": ["deps.txt"]},
                    {"id": "P", "agent": "script", "run": probe}]})
    proc, doc = run_json("run", str(phase), "--repo", str(repo), *flags)
    return repo, proc, doc


def _show(repo: Path, doc: dict, ticket: str, path: str) -> str:
    ref = next(t["ref"] for t in doc["tickets"] if t["id"] == ticket)
    return git(repo, "show", f"{ref}:{path}")


@pytest.mark.parametrize("where", ["local", "remote"])
def test_listed_address_resolves_a_real_gradle_dependency(tmp_path: Path, maven, where: str,
                                                           request: pytest.FixtureRequest) -> None:
    """On this machine's engine, and on a remote one (its workers reach the gateway through
    the relay, over the engine's exec streams)."""
    port, asked = maven
    image = request.getfixturevalue("jvm_image" if where == "local" else "remote_jvm_image")
    flags = ("--engine", request.getfixturevalue("remote_engine").url) if where == "remote" else ()
    repo, proc, doc = _run(tmp_path, image, port, [f"127.0.0.1:{port}", f"localhost:{port}"],
                           *flags)
    assert proc.returncode == 0, proc.stderr
    assert _show(repo, doc, "G", "deps.txt") == "greeting-1.0.jar"
    assert f"/{ARTIFACT}.jar" in asked and f"/{ARTIFACT}.pom" in asked
    # The probe: unlisted hosts refused (http 403, https's CONNECT too, git), a listed name
    # that resolves to loopback refused, the IP literal reached.
    assert _show(repo, doc, "P", "unlisted-http.txt") == "403"
    assert _show(repo, doc, "P", "unlisted-https.txt") != "0"
    assert _show(repo, doc, "P", "by-name.txt") == "403"
    assert _show(repo, doc, "P", "by-ip.txt") == "200"
    assert _show(repo, doc, "P", "git-exit.txt") != "0"
    assert "403" in _show(repo, doc, "P", "git.err")
    run_dir = Path(doc["run_dir"])
    log = (run_dir / "logs" / "P.log").read_text()
    assert "refused http example.com:80" in log and "refused CONNECT example.com:443" in log
    assert f"refused http localhost:{port}" in log
    # Every connection is in the ticket's transcript: allowed or not, host, bytes.
    entries = [json.loads(line) for line in
               (run_dir / "transcripts" / "G.jsonl").read_text().splitlines()]
    egress = [e for e in entries if e["kind"] == "egress"]
    assert egress and all(e["allowed"] and e["host"] == "127.0.0.1" for e in egress)
    assert sum(e["bytes_down"] for e in egress) > 0
    # Nothing people read carries what the worker forged.
    shown = log + proc.stdout + proc.stderr
    # aiohttp's parser refuses such a request line before the gateway sees it (never a
    # hand-written parser): 400, and nothing of it reaches a log.
    assert _show(repo, doc, "P", "forged.txt").count("HTTP/1.0 400 Bad Request") == 2
    assert "\u202e" not in shown and "\x1b" not in shown
    report = runner_cli("report", doc["run_id"], "--repo", str(repo))
    assert report.returncode == 0, report.stderr
    assert "## Egress through the gateway" in report.stdout
    assert f"| G | 127.0.0.1:{port} | allowed |" in report.stdout
    assert "| P | example.com:80 | refused: " in report.stdout
    assert "\u202e" not in report.stdout and "\x1b" not in report.stdout


def test_without_the_entry_the_build_fails_on_the_gateways_refusal(tmp_path: Path,
                                                                   jvm_image: str,
                                                                   maven) -> None:
    port, _ = maven
    _, proc, doc = _run(tmp_path, jvm_image, port, ["example.invalid"])
    assert proc.returncode == 1, proc.stderr
    tickets = {t["id"]: t for t in doc["tickets"]}
    assert tickets["G"]["status"] == "failed"
    log = (Path(doc["run_dir"]) / "logs" / "G.log").read_text()
    assert f"refused http 127.0.0.1:{port}" in log
    assert "egress" in log     # the refusal says where to add the address
