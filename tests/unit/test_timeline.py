"""The run's timeline (timeline.svg, and the HTML report's): a bar per attempt, the self-test
and the phase checks as rows of their own, an axis, a legend, and a resumed run's standstill
as a band that stays narrow however long it was."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from runner.records.events import TicketStatus
from runner.records.outcome import Attempt, TicketOutcome
from runner.records.record import CHECKS_SPAN, GAP_SPAN, SELFTEST_SPAN, RunResult
from runner.views.timeline import GAP_SHARE, LEFT, WIDTH, timeline_svg

NS = {"s": "http://www.w3.org/2000/svg"}
T0 = 1_000_000.0


def _run(tmp_path: Path, gap: float) -> RunResult:
    # A: conflicted, then rerun and integrated after the gap; B failed before it.
    a = TicketOutcome("A", TicketStatus.INTEGRATED, started=T0 + 2, ended=T0 + gap + 20,
                      attempts=(Attempt(0, "s", T0 + 2, T0 + 8, "conflicted"),
                                Attempt(1, "s", T0 + gap + 12, T0 + gap + 20, "integrated")))
    b = TicketOutcome("B", TicketStatus.FAILED, started=T0 + 2, ended=T0 + 6,
                      attempts=(Attempt(0, "s", T0 + 2, T0 + 6, "failed"),))
    return RunResult(run_id="r", phase="p", base_sha="0" * 40, target="t", run_dir=tmp_path,
                     outcomes={"A": a, "B": b}, started=T0, ended=T0 + gap + 25,
                     spans=[[SELFTEST_SPAN, T0, T0 + 2], [GAP_SPAN, T0 + 10, T0 + gap + 10],
                            [SELFTEST_SPAN, T0 + gap + 10, T0 + gap + 12],
                            [CHECKS_SPAN, T0 + gap + 20, T0 + gap + 25]])


def _bars(svg: ET.Element) -> dict[str, list[tuple[float, float]]]:
    rows: dict[str, list[tuple[float, float]]] = {}
    for rect in svg.iterfind("s:rect[@class='bar']", NS):
        rows.setdefault(rect.get("data-row", ""), []).append(
            (float(rect.get("x", 0)), float(rect.get("width", 0))))
    return rows


def test_a_bar_per_attempt_and_the_runs_own_rows(tmp_path: Path) -> None:
    svg = ET.fromstring(timeline_svg(_run(tmp_path, gap=5)))
    rows = _bars(svg)
    assert list(rows) == [SELFTEST_SPAN, CHECKS_SPAN, "A", "B"]
    assert len(rows["A"]) == 2 and len(rows[SELFTEST_SPAN]) == 2
    (first, _), (rerun, _) = rows["A"]
    assert LEFT <= first < rerun <= LEFT + WIDTH
    titles = [t.text for t in svg.iterfind(".//s:rect/s:title", NS)]
    assert "A attempt 2: integrated, 8.0s" in titles
    legend = {t.text for t in svg.iterfind("s:text", NS)}
    assert {"integrated", "conflicted", "failed", SELFTEST_SPAN, CHECKS_SPAN,
            GAP_SPAN} <= legend
    assert "0s" in legend                           # the axis starts at the run's start


def test_a_long_standstill_stays_narrow(tmp_path: Path) -> None:
    svg = ET.fromstring(timeline_svg(_run(tmp_path, gap=3 * 86400)))   # resumed 3 days on
    [band] = svg.iterfind("s:rect[@class='gap']", NS)
    assert float(band.get("width", 0)) <= WIDTH * GAP_SHARE + 1
    assert any(t.text == "72h00m stopped" for t in svg.iterfind("s:text", NS))
    rows = _bars(svg)
    (rerun, width), = rows["A"][1:]
    assert rerun + width <= LEFT + WIDTH + 1 and width > 50       # still readable
    ticks = [t.text for t in svg.iterfind("s:text", NS) if t.get("text-anchor") == "middle"]
    assert ticks[0] == "0s" and "1m" not in "".join(ticks)         # driven time, not days
