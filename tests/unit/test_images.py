from __future__ import annotations

from pathlib import Path

import pytest

from runner.errors import ImageError
from runner.records.events import Event, ImageOutput
from runner.sandbox.images import apt_mirror, run_streamed


def test_mirror_from_deb822_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNNER_DEBIAN_MIRROR", raising=False)
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n"
        "Components: main\n\nTypes: deb deb-src\nURIs: http://mirror.example/debian\n"
        "Suites: bookworm bookworm-updates\nComponents: main\n")
    assert apt_mirror(tmp_path) == "http://mirror.example/debian"


def test_mirror_from_sources_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNNER_DEBIAN_MIRROR", raising=False)
    (tmp_path / "sources.list").write_text(
        "# comment\ndeb http://m.example/debian-security bookworm-security main\n"
        "deb [arch=amd64] http://m.example/debian bookworm main\n")
    assert apt_mirror(tmp_path) == "http://m.example/debian"


def test_mirror_override_and_absence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNNER_DEBIAN_MIRROR", "http://override.example/debian")
    assert apt_mirror(tmp_path) == "http://override.example/debian"
    monkeypatch.delenv("RUNNER_DEBIAN_MIRROR")
    with pytest.raises(ImageError, match="RUNNER_DEBIAN_MIRROR"):
        apt_mirror(tmp_path)


class _Seen:
    """A sink that keeps the lines of image output, and may act on one as it arrives."""

    def __init__(self, on_line=None) -> None:
        self.lines: list[tuple[str, str]] = []
        self.on_line = on_line or (lambda line: None)

    def emit(self, event: Event) -> None:
        if isinstance(event, ImageOutput):
            self.lines.append((event.image, event.line))
            self.on_line(event.line)


def test_host_steps_stream_their_output_as_it_comes(tmp_path: Path) -> None:
    # The command waits for a file the sink makes on seeing its first line: it only ends if
    # that line reached the sink while the command still ran.
    go = tmp_path / "go"
    seen = _Seen(lambda line: go.touch() if line == "first" else None)
    script = (f"echo first; i=0; until [ -e {go} ]; do i=$((i+1)); [ $i -gt 200 ] && exit 9; "
              "sleep 0.05; done; printf 'se'; sleep 0.1; printf 'cond\\n\\033[31mred\\033[0m\\r\\n'"
              "; echo err >&2; printf 'no newline'")
    run_streamed(["sh", "-c", script], image="base:1", sink=seen)
    assert seen.lines == [("base:1", "first"), ("base:1", "second"), ("base:1", "red"),
                          ("base:1", "err"), ("base:1", "no newline")]


def test_a_failed_host_step_names_its_last_lines(tmp_path: Path) -> None:
    seen = _Seen()
    with pytest.raises(ImageError) as caught:
        run_streamed(["sh", "-c", "echo 1; echo 2; echo 3; echo 'E: no mirror' >&2; exit 4"],
                     image="base:1", sink=seen)
    assert str(caught.value) == "image base:1: sh failed (exit 4): 2 | 3 | E: no mirror"
    assert [line for _, line in seen.lines] == ["1", "2", "3", "E: no mirror"]
    with pytest.raises(ImageError, match="image base:1: no-such-tool-here could not start"):
        run_streamed(["no-such-tool-here"], image="base:1", sink=seen)
