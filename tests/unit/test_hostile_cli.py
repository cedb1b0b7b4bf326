"""Each hostile input seen so far, given to the real CLI: exit 2, one line on stderr, no
traceback, within seconds; and an id from the command line never reaches outside the run
directory."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.helpers import ROOT, make_repo

TICKET = "  - {id: A, agent: script, run: 'true'}\n"


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNNER_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env["DOCKER_HOST"] = "unix:///nonexistent/docker.sock"   # none of these may get that far
    return subprocess.run([sys.executable, "-m", "runner", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=30)


def _refused(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("runner: error: ")
    return line.removeprefix("runner: error: ")


def _deep() -> str:
    return "name: p\ntickets: " + "[" * 20_000 + "]" * 20_000 + "\n"


def _bomb() -> str:
    lines = [f"x{i}: &a{i} [" + ", ".join([f"*a{i - 1}" if i else "lol"] * 9) + "]"
             for i in range(10)]
    return "\n".join(lines) + "\nname: p\ntickets:\n" + TICKET


FILES: dict[str, tuple[bytes, str]] = {
    "not UTF-8": (b"name: p\ntickets:\n  - {id: A, agent: script, run: '\xff\xfe'}\n",
                  "not UTF-8: byte 0xff at line 3, column 34"),
    "20,000 levels deep": (_deep().encode(), "nested more than 32 levels deep at line 2"),
    "tickets twice": (("name: p\ntickets:\n" + TICKET + "tickets:\n" + TICKET).encode(),
                      "tickets: given twice (lines 2 and 4)"),
    "an image reference Docker rejects": (
        ("name: p\nimage: 'Runner Worker:latest'\ntickets:\n" + TICKET).encode(),
        "image: 'Runner Worker:latest' is not an image reference"),
    "an alias bomb": (_bomb().encode(), "holds more than 2,000,000 values"),
    "seventeen megabytes": (("name: p\ntickets:\n" + TICKET + "#" * (17 << 20)).encode(),
                      "larger than 16 MiB"),
    "no limits at all": (("name: p\nresources: {cpus: 0.0000000001, memory: '0'}\ntickets:\n"
                          + TICKET).encode(), "resources.cpus: 1e-10 CPUs is not a limit"),
    "an endless timeout": (b"name: p\ntickets:\n  - {id: A, agent: script, run: x, "
                           b"timeout: .inf}\n", "tickets[0].timeout (ticket A): must be a "
                                                "finite number"),
}


@pytest.mark.parametrize("case", sorted(FILES))
@pytest.mark.parametrize("dry_run", [True, False], ids=["dry-run", "run"])
def test_a_hostile_phase_file_is_one_line(tmp_path: Path, case: str, dry_run: bool) -> None:
    data, says = FILES[case]
    repo = make_repo(tmp_path / "repo")
    phase = tmp_path / "phase.yaml"
    phase.write_bytes(data)
    line = _refused(_cli("run", str(phase), *(["--dry-run"] if dry_run else []), cwd=repo))
    assert line.startswith(f"{phase}: {says}"), line


def test_a_bad_image_flag_is_one_line(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    (tmp_path / "phase.yaml").write_text("name: p\ntickets:\n" + TICKET)
    line = _refused(_cli("run", str(tmp_path / "phase.yaml"), "--dry-run", "--image", "a::b",
                         cwd=repo))
    assert line.startswith("--image: 'a::b' is not valid for image: 'a::b' is not an image "
                           "reference")
    assert _refused(_cli("doctor", "--image", "UP:x", cwd=repo)).startswith(
        "--image: 'UP:x' is not an image reference (a repository name is lower case)")


def test_a_fifo_is_refused_without_being_opened(tmp_path: Path) -> None:
    """Opening a FIFO for reading blocks until a writer comes: none will."""
    fifo = tmp_path / "phase.yaml"
    os.mkfifo(fifo)
    line = _refused(_cli("run", str(fifo), "--dry-run", cwd=make_repo(tmp_path / "repo")))
    assert line == f"{fifo}: is a FIFO, not a file; give the path of a phase YAML file"


def test_a_fifo_with_a_writer_is_not_read_either(tmp_path: Path) -> None:
    fifo = tmp_path / "phase.yaml"
    os.mkfifo(fifo)
    opened = threading.Event()

    def flood() -> None:   # a writer that never stops, as `yes` into the FIFO would
        try:
            fd = os.open(fifo, os.O_WRONLY)
        except OSError:
            return
        opened.set()
        try:
            while True:
                os.write(fd, b"name: p\n" * 4096)
        except OSError:
            os.close(fd)

    writer = threading.Thread(target=flood, daemon=True)
    writer.start()
    proc = _cli("run", str(fifo), "--dry-run", cwd=make_repo(tmp_path / "repo"))
    if not opened.is_set():   # the runner never opened it: release the writer's open
        os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
    writer.join(timeout=5)
    assert _refused(proc).endswith("is a FIFO, not a file; give the path of a phase YAML file")


@pytest.mark.parametrize(("path", "says"), [
    ("/dev/zero", "/dev/zero: is a device, not a file"),
    ("/dev/null", "/dev/null: is a device, not a file"),
    (".", ".: is a directory, not a file"),
])
def test_a_device_or_directory_is_refused(tmp_path: Path, path: str, says: str) -> None:
    assert _refused(_cli("run", path, "--dry-run", cwd=make_repo(tmp_path / "repo"))
                    ).startswith(says)


def _planted_run(repo: Path, where: Path) -> None:
    """A run directory outside the state dir, as `../x` would name it, with a secret log."""
    (where / "logs").mkdir(parents=True)
    (where / "run.json").write_text("{}")
    (where / "logs" / "T.log").write_text("SECRET\n")


@pytest.mark.parametrize("args", [
    ("logs", "../x", "T"), ("logs", "x/../../x", "T"), ("status", "../x"), ("resume", "../x"),
    ("clean", "../x"), ("report", "../x"),
])
def test_a_run_id_cannot_reach_outside_the_state_dir(tmp_path: Path,
                                                     args: tuple[str, ...]) -> None:
    repo = make_repo(tmp_path / "repo")
    _planted_run(repo, repo / ".git" / "x")       # .git/runner/../x
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    line = _refused(_cli(*args, "--repo", str(repo), cwd=tmp_path))
    assert line.startswith(f"RUN_ID {args[1]!r} is not a run id"), line
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before


def test_a_ticket_cannot_reach_outside_the_run(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    state = tmp_path / "state"
    _planted_run(repo, state / "20260101-120000-ab12")
    (state / "secret.log").write_text("SECRET\n")
    proc = _cli("logs", "20260101-120000-ab12", "../../secret", "--state-dir", str(state),
                cwd=repo)
    assert _refused(proc).startswith("TICKET '../../secret' is not a ticket id")
    assert "SECRET" not in proc.stdout + proc.stderr


def test_report_writes_nothing_for_a_run_outside(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    state = tmp_path / "deep" / "state"
    state.mkdir(parents=True)
    (tmp_path / "etc").mkdir()
    out = tmp_path / "report.md"
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    line = _refused(_cli("report", "../../etc", "--state-dir", str(state), "--output",
                         str(out), cwd=repo))
    assert line.startswith("RUN_ID '../../etc' is not a run id")
    assert not out.exists() and sorted(str(p) for p in tmp_path.rglob("*")) == before
