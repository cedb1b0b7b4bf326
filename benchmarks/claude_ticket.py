"""One Claude Code ticket in runner against the same prompt run by the binary directly on the
host, both against the same fake Messages API on 127.0.0.1, in the same run.

    python3 benchmarks/claude_ticket.py [--rounds 3]

runner's side is the whole `runner run` of a one-ticket phase (start-up, image check, the
isolation self-test with the gateway, workspace and container, Claude Code through the
gateway, collect, integrate), without --no-preflight; the direct side is `claude -p` with
the same flags in a fresh clone. The script: Write a file, run Bash, end. The figure is the
median of the rounds, alternating the two. Last line: the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runner.agents.claude_binary import find_binary  # noqa: E402
from tests.fakes.messages_api import FakeMessagesAPI, Reply, done, tool  # noqa: E402
from tests.helpers import make_repo, write_phase  # noqa: E402

KEY = "sk-ant-benchmark-key-0000000000"
MODEL = "claude-haiku-5-5"
TICKET = "BENCH"


def script() -> list[Reply]:
    return [Reply([tool("Write", file_path="out.txt", content="written\n")]),
            Reply([tool("Bash", command="echo more >> out.txt")]), done()]


def in_runner(root: Path, fake: FakeMessagesAPI) -> tuple[float, float]:
    """The whole run's wall time, and the ticket's own (workspace to integrated)."""
    repo = make_repo(root / "repo")
    phase = write_phase(root / "p.yaml", {"name": "bench", "tickets": [
        {"id": TICKET, "agent": "claude-code", "tier": "simple", "prompt": "Make out.txt."}]})
    env = {**os.environ, "ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": fake.url}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "runner", "run", str(phase), "--repo",
                           str(repo), "--json"], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"runner run failed:\n{proc.stderr[-3000:]}")
    return seconds, json.loads(proc.stdout)["tickets"][0]["seconds"]


def direct(root: Path, fake: FakeMessagesAPI, binary: Path) -> float:
    repo = make_repo(root / "direct")
    home = root / "home"
    home.mkdir()
    env = {**os.environ, "ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": fake.url,
           "HOME": str(home), "CLAUDE_CONFIG_DIR": str(home / ".claude"), "IS_SANDBOX": "1",
           "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_AUTOUPDATER": "1"}
    argv = [str(binary), "-p", "--append-system-prompt", f"Ticket: {TICKET} — bench",
            "--dangerously-skip-permissions", "--model", MODEL, "--max-turns", "40",
            "--output-format", "stream-json", "--verbose", "--", "Make out.txt."]
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=repo, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0 or not (repo / "out.txt").is_file():
        raise SystemExit(f"claude failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    binary = find_binary().path
    ours, tickets, theirs = [], [], []
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp, \
                FakeMessagesAPI({TICKET: script() * 2}) as fake:
            theirs.append(direct(Path(tmp), fake, binary))
            wall, ticket = in_runner(Path(tmp), fake)
            ours.append(wall)
            tickets.append(ticket)
    mine, raw = statistics.median(ours), statistics.median(theirs)
    print(f"claude -p directly on the host            : {raw:6.2f} s")
    print(f"the ticket in runner (container to merged) : {statistics.median(tickets):6.2f} s")
    print(f"the same ticket in runner (whole run)      : {mine:6.2f} s  (+{mine - raw:.2f} s)")
    print(f"runner/direct ratio: {mine / raw:.2f}")


if __name__ == "__main__":
    main()
