"""A run's timeline as SVG, for the markdown report (timeline.svg) and the HTML report alike:
a row per ticket with a bar per attempt, rows for the self-test and the phase checks, a time
axis, a legend, and the time no runner drove the run (between an interruption and its
resume) as a band of its own, drawn narrow when it is long."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from runner.records import CHECKS_SPAN, GAP_SPAN, SELFTEST_SPAN, RunResult
from runner.text import xml_text

# One colour per attempt's result (or, for a ticket that never ran, its status), and the
# run's own rows.
COLOURS = {"integrated": "#2e7d32", "conflicted": "#ef6c00", "stopped": "#9e9e9e",
           "failed": "#c62828", "changed nothing": "#c62828", "skipped": "#9e9e9e",
           SELFTEST_SPAN: "#5e35b1", CHECKS_SPAN: "#00838f", GAP_SPAN: "#cfd8dc"}
OTHER = "#1565c0"       # a status with no colour of its own (running, interrupted)
LEFT, WIDTH, ROW, AXIS = 130, 720, 24, 46
GAP_SHARE = 0.06        # of the width, at most, for each long gap
GAPS_SHARE = 0.3        # for all of them


@dataclass(frozen=True)
class Bar:
    start: float
    end: float
    kind: str
    title: str


def _rows(result: RunResult) -> list[tuple[str, list[Bar]]]:
    rows: list[tuple[str, list[Bar]]] = []
    for kind in (SELFTEST_SPAN, CHECKS_SPAN):
        bars = [Bar(a, b, kind, f"{kind}, {b - a:.1f}s") for what, a, b in result.spans
                if what == kind]
        if bars:
            rows.append((kind, bars))
    for o in result.outcomes.values():
        bars = [Bar(a.started, a.started + a.seconds, a.result,
                    f"{o.ticket} attempt {a.number + 1}: {a.result}, {a.seconds:.1f}s")
                for a in o.attempts if a.started]
        if not bars and o.started:
            bars = [Bar(o.started, o.started + o.seconds, str(o.status),
                        f"{o.ticket}: {o.status}, {o.seconds:.1f}s")]
        rows.append((o.ticket, bars))
    return rows


class _Scale:
    """Epoch seconds to x: linear over the time the run was driven; each gap no runner drove
    it gets at most GAP_SHARE of the width."""

    def __init__(self, begin: float, end: float, gaps: list[tuple[float, float]]) -> None:
        self.begin, self.gaps = begin, sorted(gaps)
        driven = max(1e-6, (end - begin) - sum(b - a for a, b in self.gaps))
        self.seconds = driven
        # The seconds of the axis a gap takes: its own, or GAP_SHARE of the drawing's (all
        # of them together at most GAPS_SHARE).
        share = min(GAP_SHARE * len(self.gaps), GAPS_SHARE)
        shown = driven * share / (1 - share) / len(self.gaps) if self.gaps else 0.0
        self.shown = [min(b - a, shown) for a, b in self.gaps]
        self.total = driven + sum(self.shown)

    def axis(self, t: float) -> float:
        """Seconds along the axis at ``t``."""
        along, at = 0.0, self.begin
        for (a, b), shown in zip(self.gaps, self.shown):
            if t <= a:
                break
            along += a - at
            if t < b:
                return along + shown * (t - a) / max(1e-6, b - a)
            along, at = along + shown, b
        return along + max(0.0, t - at)

    def x(self, t: float) -> float:
        return LEFT + WIDTH * self.axis(t) / self.total

    def driven(self, t: float) -> float:
        """Seconds the run had been driven by ``t``: what the axis is labelled in."""
        return max(0.0, t - self.begin) - sum(min(b, t) - a for a, b in self.gaps if a < t)


def timeline_svg(result: RunResult) -> str:
    rows = _rows(result)
    gaps = [(a, b) for what, a, b in result.spans if what == GAP_SPAN and b > a]
    ends = [bar.end for _, bars in rows for bar in bars] + [b for _, b in gaps]
    scale = _Scale(result.started, max([result.ended, result.started + 1e-6, *ends]), gaps)
    height = ROW * len(rows) + AXIS + 30
    svg = ET.Element("svg", xmlns="http://www.w3.org/2000/svg", width=str(LEFT + WIDTH + 30),
                     height=str(height), role="img", attrib={"font-family": "sans-serif",
                                                            "font-size": "12"})
    ET.SubElement(svg, "title").text = xml_text(f"timeline of run {result.run_id}")
    chart = ROW * len(rows) + 4
    for a, b in gaps:
        x = scale.x(a)
        band = ET.SubElement(svg, "rect", x=f"{x:.1f}", y="0", height=str(chart),
                             width=f"{max(3.0, scale.x(b) - x):.1f}", fill=COLOURS[GAP_SPAN],
                             attrib={"class": "gap"})
        ET.SubElement(band, "title").text = f"{GAP_SPAN} for {_duration(b - a)} (resumed after)"
        ET.SubElement(svg, "text", x=f"{x + 2:.1f}", y=str(chart + 12),
                      attrib={"font-size": "10", "fill": "#546e7a"}).text = \
            f"{_duration(b - a)} stopped"
    for i, (label, bars) in enumerate(rows):
        y = 4 + i * ROW
        ET.SubElement(svg, "text", x="4", y=str(y + 15), attrib={
            "font-family": "monospace"}).text = xml_text(label[:16])
        for bar in bars:
            x = scale.x(bar.start)
            rect = ET.SubElement(svg, "rect", x=f"{x:.1f}", y=str(y), height=str(ROW - 8),
                                 width=f"{max(2.0, scale.x(bar.end) - x):.1f}",
                                 fill=COLOURS.get(bar.kind, OTHER),
                                 attrib={"class": "bar", "data-row": xml_text(label)})
            ET.SubElement(rect, "title").text = xml_text(bar.title)
    _axis(svg, scale, chart + 16)
    _legend(svg, {bar.kind for _, bars in rows for bar in bars} | ({GAP_SPAN} if gaps else set()),
                height - 8)
    return ET.tostring(svg, encoding="unicode")


def _axis(svg: ET.Element, scale: _Scale, y: int) -> None:
    ET.SubElement(svg, "line", x1=str(LEFT), x2=str(LEFT + WIDTH), y1=str(y), y2=str(y),
                  stroke="#455a64")
    step = _step(scale.seconds)
    tick, ticks = 0.0, []
    while tick <= scale.seconds + 1e-9:
        ticks.append(tick)
        tick += step
    for seconds in ticks:
        x = scale.x(_at(scale, seconds))
        ET.SubElement(svg, "line", x1=f"{x:.1f}", x2=f"{x:.1f}", y1=str(y), y2=str(y + 4),
                      stroke="#455a64")
        ET.SubElement(svg, "text", x=f"{x:.1f}", y=str(y + 16), attrib={
            "text-anchor": "middle", "font-size": "10"}).text = _duration(seconds)


def _at(scale: _Scale, driven: float) -> float:
    """The epoch time at which the run had been driven ``driven`` seconds."""
    t = scale.begin + driven
    for a, b in scale.gaps:
        if a < t:
            t += b - a
    return t


def _legend(svg: ET.Element, kinds: set[str], y: int) -> None:
    x = LEFT
    for kind in [k for k in COLOURS if k in kinds] + sorted(kinds - COLOURS.keys()):
        ET.SubElement(svg, "rect", x=str(x), y=str(y - 9), width="10", height="10",
                      fill=COLOURS.get(kind, OTHER))
        label = ET.SubElement(svg, "text", x=str(x + 14), y=str(y), attrib={"font-size": "11"})
        label.text = xml_text(kind)
        x += 24 + 7 * len(kind)


def _step(seconds: float) -> float:
    """A round tick interval giving about eight ticks."""
    raw = max(seconds / 8, 1e-3)
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f}s" if seconds >= 10 or seconds == int(seconds) else \
            f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"
