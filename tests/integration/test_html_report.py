"""`runner report --format html` of a real run, opened in a real headless browser (Debian's
chromium): a screenshot is taken, the page logs nothing to the console (no script, nothing
it may not load), and the file names a hostile worker chose are text on it, not markup."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import make_repo, run_json, runner_cli, write_phase

# Directories and files whose paths read as markup, and a name with terminal escapes.
HOSTILE_RUN = ("mkdir -p '<script>alert(1)<' '<' docs\n"
               "echo x > '<script>alert(1)</script>'\necho y > '</div>'\n"
               "echo z > \"$(printf 'bell\\007\\033[2Jname')\"\necho ok > docs/ok.md")

PHASE = {"name": "html", "concurrency": 3, "tickets": [
    {"id": "FIRST", "agent": "script", "run": "echo a > shared.txt"},
    {"id": "SECOND", "agent": "script", "run": "sleep 3\necho b > shared.txt"},
    {"id": "HOSTILE", "agent": "script", "paths": ["docs/**"], "run": HOSTILE_RUN},
    {"id": "AFTER", "agent": "script", "depends_on": ["FIRST"], "run": "echo c > c.txt"}]}


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "chromium is missing: ./setup.sh --dev installs Debian's"
    return found


def _browser(page: Path, tmp: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu",
                           "--no-first-run", "--disable-extensions", f"--user-data-dir={tmp}",
                           "--enable-logging=stderr", "--v=0", *flags, page.as_uri()],
                          capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory, worker_image: str) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("html")
    repo = make_repo(root / "repo", {"shared.txt": "zero\n"})
    proc, doc = run_json("run", str(write_phase(root / "p.yaml", PHASE)), "--repo", str(repo))
    assert proc.returncode == 1, proc.stderr
    made = runner_cli("report", "--format", "html", "--repo", str(repo))
    assert made.returncode == 0, made.stderr
    page = Path(doc["run_dir"]) / "report.html"
    assert made.stdout == page.read_text()
    return page, doc


def test_the_page_holds_everything_itself(report) -> None:
    page, doc = report
    text = page.read_text()
    assert "<script" not in text.lower()
    assert not re.search(r"""(src|href)=["'](https?:)?//""", text)    # nothing to fetch
    for ticket in ("FIRST", "SECOND", "HOSTILE", "AFTER"):
        assert f'id="ticket-{ticket}"' in text
    assert "self-test" in text and "attempt 2: integrated" in text   # the timeline's bars
    assert 'class="add"' in text                                       # a coloured diff


def test_a_browser_renders_it_without_console_errors(report, tmp_path: Path) -> None:
    page, _ = report
    shot = tmp_path / "report.png"
    rendered = _browser(page, tmp_path / "profile", f"--screenshot={shot}",
                        "--window-size=1200,1600", "--hide-scrollbars")
    assert shot.is_file() and shot.stat().st_size > 10_000, rendered.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    console = [line for line in rendered.stderr.splitlines() if ":CONSOLE(" in line]
    assert console == []


def test_hostile_names_are_text_not_markup(report, tmp_path: Path) -> None:
    page, _ = report
    dom = _browser(page, tmp_path / "profile", "--dump-dom").stdout
    assert "<body>" in dom or "<body" in dom
    assert "<script" not in dom.lower()           # no element the worker's name made
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom     # shown, as text
    assert "&lt;/div&gt;" in dom
    assert "\x1b" not in dom and "\x07" not in dom
    assert "changed files outside its paths" in dom
