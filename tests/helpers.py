"""Helpers for tests: real git repos, the real CLI in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import docker
import yaml

ROOT = Path(__file__).resolve().parent.parent
IDENTITY = {"GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.invalid",
            "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.invalid"}


# The phase every backend must integrate the same: three at once, a dependent one, and a
# conflicting pair (both rewrite shared.txt; the second reruns on the new head).
ENGINE_TICKETS = [
    {"id": "A", "agent": "script", "run": "echo a > a.txt", "paths": ["a.txt"]},
    {"id": "B", "agent": "script", "run": "mkdir -p deep && echo b > deep/b.txt"},
    {"id": "C", "agent": "script", "run": "echo c > c.txt"},
    {"id": "D", "agent": "script", "depends_on": ["A", "B"],
     "run": "cat a.txt deep/b.txt > d.txt"},
    {"id": "P1", "agent": "script", "run": "echo one >> shared.txt"},
    {"id": "P2", "agent": "script", "run": "echo two >> shared.txt"},
]

# A CLI agent's API call (a command ticket's `run:`), as any client makes it: the base URL and
# the placeholder key it is given, the ticket named for the fake Messages API; the answer goes
# to answer.json.
API_CALL = """cat > /tmp/body.json <<EOF
{"model": "claude-haiku-5-5", "max_tokens": 16, "system": "Ticket: $RUNNER_TICKET",
 "messages": [{"role": "user", "content": "$RUNNER_PROMPT"}]}
EOF
curl -sS --fail-with-body "$ANTHROPIC_BASE_URL/v1/messages" -H "x-api-key: $ANTHROPIC_API_KEY" \\
  -H "anthropic-version: 2023-06-01" -H "content-type: application/json" \\
  -d @/tmp/body.json > answer.json
"""


def git(repo: Path, *args: str) -> str:
    # safe.directory: some test repos belong to another uid (the non-root user test).
    proc = subprocess.run(["git", "-c", "safe.directory=*", *args], cwd=repo,
                          capture_output=True, text=True, env={**os.environ, **IDENTITY})
    assert proc.returncode == 0, f"git {args}: {proc.stderr}"
    return proc.stdout.strip()


def make_repo(path: Path, files: dict[str, str] | None = None) -> Path:
    """A git repo at ``path`` on branch main with one commit of ``files``."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "--quiet", "--initial-branch=main")
    for rel, text in (files or {"README.md": "hello\n"}).items():
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_text(text)
    git(path, "add", "-A")
    git(path, "commit", "--quiet", "-m", "base")
    return path


def write_phase(path: Path, phase: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(phase, sort_keys=False))
    return path


def runner_cli(*args: str, cwd: Path | None = None, python: str = sys.executable,
               env: dict[str, str] | None = None,
               prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """Run the real `runner` command in a subprocess."""
    return subprocess.run([*prefix, python, "-m", "runner", *args], cwd=cwd,
                          capture_output=True, text=True, env=env or dict(os.environ),
                          timeout=900)


def run_json(*args: str, **kwargs: Any) -> tuple[subprocess.CompletedProcess[str], dict]:
    proc = runner_cli(*args, "--json", **kwargs)
    assert proc.stdout.strip(), f"no JSON document; stderr:\n{proc.stderr}"
    return proc, json.loads(proc.stdout)


def host_snapshot(repo: Path) -> dict[str, str]:
    """What a run must never change in the user's checkout."""
    index = (repo / ".git" / "index").read_bytes()   # before git status can refresh it
    return {"index": index.hex(), "head": git(repo, "rev-parse", "HEAD"),
            "branch": git(repo, "symbolic-ref", "HEAD"),
            "status": git(repo, "status", "--porcelain=v2", "--untracked-files=all"),
            "diff": git(repo, "diff"), "staged": git(repo, "diff", "--cached"),
            "files": "\n".join(sorted(f"{p.relative_to(repo)}:{p.read_bytes().hex()}"
                                      for p in repo.rglob("*")
                                      if p.is_file() and ".git" not in p.parts))}


def containers(client: docker.DockerClient, run: str | None = None, *,
               stopped: bool = True) -> list[docker.models.containers.Container]:
    """The runner's containers on ``client`` (one run's, with ``run``).

    Workers come and go while a test looks: one removed between docker-py's list and its
    inspect of each is skipped (ignore_removed) instead of failing the test with a 404."""
    label = "runner.run" if run is None else f"runner.run={run}"
    return client.containers.list(all=stopped, filters={"label": label}, ignore_removed=True)


def in_a_terminal(argv: list[str], typed: bytes, timeout: float = 120,
                  env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run ``argv`` on a pseudo-terminal, type ``typed`` once it has said it opened, and read
    all it prints until it exits."""
    import fcntl
    import pty
    import select
    import signal
    import struct
    import termios

    given = {k: v for k, v in (env or os.environ).items() if k not in ("COLUMNS", "LINES")}
    pid, fd = pty.fork()
    if pid == 0:     # the child: the real command, on the terminal
        os.execvpe(argv[0], argv, {**given, **IDENTITY, "TERM": "dumb"})
    # The terminal's size, as a window would set it: 45 rows, 123 columns.
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 45, 123, 0, 0))
    output, sent, deadline = b"", False, time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                data = os.read(fd, 65536)
            except OSError:          # the child is gone: its terminal closed
                break
            if not data:
                break
            output += data
        if not sent and b"runner: a shell in" in output:
            time.sleep(1)            # the shell's prompt; typed keys wait in the TTY anyway
            os.write(fd, typed)
            sent = True
    ended, status = os.waitpid(pid, os.WNOHANG)
    if not ended:                  # past the deadline: it does not hang the suite
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), output.decode("utf-8", "replace")
