"""Workers that attack from inside, run through `runner run` beside an honest bystander.

Each attack script prints `ATTEMPT <what>: blocked|SUCCEEDED` for what it can judge from
inside; the host judges the rest: the host repo passes `git fsck` with its refs unchanged, no
payload file appears on the host, the test's 127.0.0.1 listener is never reached, and the
bystander's work is integrated.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import git, make_repo, write_phase

ATTACKS = Path(__file__).parent / "attacks"
SECRET = "sk-ant-adversarial-0123456789"
SIDE_SECRET = "side-branch-secret-9f8e7d"
PIDS, MEMORY = 96, "256m"
PRELUDE = """
attempt() { echo "ATTEMPT $1: $2"; }
try() { name="$1"; shift; if "$@" >/dev/null 2>&1; then attempt "$name" SUCCEEDED; \
else attempt "$name" blocked; fi; }
"""
SLOW = {"forkbomb": 20}
# On another machine's engine the clone holds its own copy of the objects (no store is
# mounted): rewriting them harms nobody but the worker, so that attack means nothing there.
LOCAL_ONLY = {"objects"}


def _attacks(engine: str) -> list[Path]:
    return [p for p in sorted(ATTACKS.glob("*.sh"))
            if engine == "local" or p.stem not in LOCAL_ONLY]


class Listener:
    """A TCP server on 127.0.0.1 that counts the connections it accepts."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
                self.accepted += 1
                conn.close()
            except TimeoutError:
                continue

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture(scope="module", params=["local", "remote"])
def attacked(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
             worker_image: str) -> Iterator[dict]:
    """The attacks run on this machine's engine, and on another's (the test engine)."""
    engine = request.param
    flags = []
    if engine == "remote":
        request.getfixturevalue("remote_worker_image")
        flags = ["--engine", request.getfixturevalue("remote_engine").url]
    root = tmp_path_factory.mktemp(f"adversarial-{engine}")
    repo = make_repo(root / "repo", {"README.md": "victim\n", "src/a.txt": "a\n"})
    git(repo, "branch", "keep-me")
    git(repo, "tag", "v1")
    git(repo, "checkout", "-q", "-b", "side")       # what base does not reach
    (repo / "secret.txt").write_text(f"{SIDE_SECRET}\n")
    git(repo, "add", "secret.txt")
    git(repo, "commit", "-q", "-m", "side")
    side_blob = git(repo, "rev-parse", "side:secret.txt")
    git(repo, "checkout", "-q", "main")
    payload, state = root / "payload", root / "state"
    payload.mkdir()
    refs_before = git(repo, "for-each-ref", "--format=%(refname) %(objectname)")
    listener = Listener()
    values = {"@PAYLOAD@": str(payload), "@HOST_REPO@": str(repo), "@STATE_DIR@": str(state),
              "@PORT@": str(listener.port), "@SECRET@": SECRET, "@PIDS@": str(PIDS),
              "@MEMORY@": MEMORY, "@SIDE_BLOB@": side_blob, "@SIDE_SECRET@": SIDE_SECRET}
    tickets = []
    for script in _attacks(engine):
        text = PRELUDE + script.read_text()
        for key, value in {**values, "@TICKET@": script.stem}.items():
            text = text.replace(key, value)
        tickets.append({"id": script.stem, "agent": "script", "run": text,
                        "timeout": SLOW.get(script.stem, 120)})
    tickets.append({"id": "bystander", "agent": "script",
                    "run": "echo honest > marker-bystander\nsleep 6\necho done > bystander.txt"})
    phase = write_phase(root / "phase.yaml", {
        "name": "adversarial", "concurrency": 4,
        "resources": {"cpus": 1, "memory": MEMORY, "pids": PIDS}, "tickets": tickets})
    env = {**os.environ, "ANTHROPIC_API_KEY": SECRET}
    proc = subprocess.run([sys.executable, "-m", "runner", "run", str(phase), "--repo", str(repo),
                           "--state-dir", str(state), "--json", *flags], capture_output=True,
                          text=True,
                          env=env, timeout=900)
    listener.close()
    doc = json.loads(proc.stdout)
    yield {"repo": repo, "payload": payload, "doc": doc, "proc": proc, "refs": refs_before,
           "side_blob": side_blob, "engine": engine,
           "listener": listener, "state": state}


def _attempts(doc: dict) -> list[tuple[str, str, str]]:
    logs = Path(doc["run_dir"]) / "logs"
    found = []
    for ticket in doc["tickets"]:
        text = (logs / f"{ticket['id']}.log").read_text(errors="replace")
        found += [(ticket["id"], what, verdict) for what, verdict in
                  re.findall(r"^\| ATTEMPT (.+): (blocked|SUCCEEDED)$", text, re.M)]
    return found


def test_every_attempt_is_blocked(attacked, capsys: pytest.CaptureFixture[str]) -> None:
    attempts = _attempts(attacked["doc"])
    succeeded = [a for a in attempts if a[2] == "SUCCEEDED"]
    with capsys.disabled():
        print(f"\nadversarial suite ({attacked['engine']} engine): {len(attempts)} attempts "
              "from inside, "
              f"{len(succeeded)} succeeded")
        for ticket, what, verdict in attempts:
            print(f"  {ticket:>10}  {verdict:<9} {what}")
    attacked_tickets = {a[0] for a in attempts}
    assert attacked_tickets == {p.stem for p in _attacks(attacked["engine"])}, attacked_tickets
    assert len(attempts) >= (35 if attacked["engine"] == "local" else 30)
    assert succeeded == []


def test_host_repo_is_intact(attacked) -> None:
    repo = attacked["repo"]
    fsck = subprocess.run(["git", "fsck", "--full", "--strict", "--no-dangling"], cwd=repo,
                          capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    after = git(repo, "for-each-ref", "--format=%(refname) %(objectname)")
    unchanged = [line for line in after.splitlines()
                 if not line.startswith(("refs/runner/", "refs/heads/runner/"))]
    assert unchanged == attacked["refs"].splitlines()
    assert git(repo, "status", "--porcelain") == ""


def test_no_payload_reached_the_host(attacked) -> None:
    assert list(attacked["payload"].iterdir()) == []
    assert attacked["listener"].accepted == 0


def test_bystander_and_contained_attackers_finish(attacked) -> None:
    status = {t["id"]: t["status"] for t in attacked["doc"]["tickets"]}
    assert status["bystander"] == "integrated"
    repo, target = attacked["repo"], attacked["doc"]["target"]
    assert git(repo, "show", f"{target}:bystander.txt") == "done"
    # Attackers whose scripts end normally are collected and integrated like anyone else:
    # their planted config and links never ran on the host.
    for ticket in ("outside", "hostpath", "socket", "network", "secret", "gitconfig"):
        row = next(t for t in attacked["doc"]["tickets"] if t["id"] == ticket)
        assert status[ticket] == "integrated" or row["reason"] == "it changed nothing", row
    assert git(repo, "show", f"{target}:planted.txt") == "planted"
    # The commit naming another branch's blob was refused, not completed from the host's
    # objects: the blob is in neither the run's store nor the result.
    row = next(t for t in attacked["doc"]["tickets"] if t["id"] == "sidebranch")
    assert status["sidebranch"] == "failed" and "refused" in row["reason"], row
    store = Path(attacked["doc"]["run_dir"]) / "objects.git"
    assert subprocess.run(["git", "--git-dir", str(store), "cat-file", "-e",
                           attacked["side_blob"]]).returncode != 0
    # The malformed commit was refused on its way in; the host's fsck above saw none of it.
    row = next(t for t in attacked["doc"]["tickets"] if t["id"] == "badobjects")
    assert status["badobjects"] == "failed" and "badEmail" in row["reason"], row
    # The fork bomb was stopped (it killed its own container's processes).
    assert status["forkbomb"] == "failed"
    reason = next(t["reason"] for t in attacked["doc"]["tickets"] if t["id"] == "forkbomb")
    assert reason == "run exited with 137", reason
    # What the supervisor's attacker forged on its streams (exit frames of 0) changed
    # nothing: its result is what its script did, its flood left the lead answering.
    row = next(t for t in attacked["doc"]["tickets"] if t["id"] == "supervisor")
    assert status["supervisor"] == "failed" and row["reason"] == "run exited with 3", row
