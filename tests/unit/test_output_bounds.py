"""What a worker prints costs the lead bounded memory: OutputTail cuts lines, CappedLog keeps
a head and a tail, SinkValve bounds what the sinks get. Real files, no mocks."""

from __future__ import annotations

from pathlib import Path

from runner.records.logcap import CappedLog, SinkValve
from runner.sandbox import OutputTail


def test_a_line_without_end_is_cut_and_marked() -> None:
    lines: list[str] = []
    tail = OutputTail(lines.append, limit=1000, line_limit=100)
    for _ in range(10_000):                     # a million characters, no newline
        tail.feed("x" * 100)
        assert len(tail._partial[1]) <= 100     # the partial line stays bounded
    tail.feed("y\nnext\nlast")
    output = tail.close()
    assert lines == ["x" * 100 + " [… 999,901 more characters of this line cut]", "next",
                     "last"]
    assert output.endswith("y\nnext\nlast") and len(output) == 1000


def test_streams_keep_their_partial_lines_apart() -> None:
    lines: list[str] = []
    tail = OutputTail(lines.append, line_limit=10)
    tail.feed("out-", 1)
    tail.feed("err-0123456789", 2)
    tail.feed("done\n", 1)
    tail.feed("\n", 2)
    tail.close()
    assert lines == ["out-done", "err-012345 [… 4 more characters of this line cut]"]


def test_log_keeps_head_and_tail_and_says_what_was_cut(tmp_path: Path) -> None:
    path = tmp_path / "t.log"
    written = 0
    with CappedLog(path, head=1000, tail=1000) as log:
        log.write("HEAD\n")
        for n in range(50_000):
            line = f"line {n}\n"
            written += len(line)
            log.write(line)
            assert path.stat().st_size <= 1000 + 200 + 2 * 1000 + len(line)
        log.write("LAST\n")
        log.flush()
        cut = log.cut
    text = path.read_text()
    assert text.startswith("HEAD\nline 0\n") and text.endswith("line 49999\nLAST\n")
    assert f"[runner: {cut:,} bytes of this log cut here" in text
    assert written - cut < 4000 and cut > 0
    # What a later attempt appends is kept as well; the earlier log counts as head.
    with CappedLog(path, head=1000, tail=1000) as log:
        log.write("=== rerun 1 ===\n")
    assert path.read_text().startswith(text) and path.read_text().endswith("=== rerun 1 ===\n")


def test_small_log_is_untouched(tmp_path: Path) -> None:
    with CappedLog(tmp_path / "t.log", head=1000, tail=1000) as log:
        for n in range(100):
            log.write(f"{n}\n")
    assert (tmp_path / "t.log").read_text() == "".join(f"{n}\n" for n in range(100))


def test_sink_valve_cuts_and_limits_the_rate() -> None:
    shown: list[str] = []
    now = [0.0]
    valve = SinkValve(shown.append, width=10, rate=10, burst=5, clock=lambda: now[0])
    valve("a" * 25)
    for n in range(100):          # all at once: the burst passes, the rest is held
        valve(f"n{n}")
    assert shown == ["aaaaaaaaaa [… 15 characters]", "n0", "n1", "n2", "n3"]
    now[0] = 1.0                  # a second later: ten more may pass
    valve("later")
    assert shown[-2:] == ["[runner: 96 lines not shown here (too many, too fast); the "
                          "ticket's log has them]", "later"]
    for _ in range(20):
        valve("x")
    valve.close()
    assert shown[-1].startswith("[runner: 16 lines not shown")   # burst 5: 4 passed
