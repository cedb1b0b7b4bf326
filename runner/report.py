"""The postmortem a run writes about itself: markdown (with an SVG timeline), JSON, JUnit."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

from runner.events import TicketStatus
from runner.phase import Phase
from runner.run import RunResult
from runner.worker import TicketOutcome

COLOURS = {TicketStatus.INTEGRATED: "#2e7d32", TicketStatus.FAILED: "#c62828",
           TicketStatus.SKIPPED: "#9e9e9e"}


def duration(o: TicketOutcome) -> float:
    return max(0.0, o.ended - o.started) if o.started else 0.0


def critical_path(result: RunResult, phase: Phase) -> float:
    """The longest chain of ticket times through depends_on."""
    memo: dict[str, float] = {}

    def longest(ticket: str) -> float:
        if ticket not in memo:
            deps = phase.ticket(ticket).depends_on
            memo[ticket] = duration(result.outcomes[ticket]) + max(
                (longest(d) for d in deps if d in result.outcomes), default=0.0)
        return memo[ticket]

    return max((longest(t) for t in result.outcomes), default=0.0)


def throughput(result: RunResult, phase: Phase) -> dict[str, float]:
    wall = max(0.0, result.ended - result.started)
    total = sum(duration(o) for o in result.outcomes.values())
    path = critical_path(result, phase)
    return {"wall_seconds": round(wall, 2), "ticket_seconds": round(total, 2),
            "critical_path_seconds": round(path, 2),
            "speedup": round(total / wall, 2) if wall else 0.0,
            "parallel_efficiency": round(path / wall, 2) if wall else 0.0}


@dataclass
class TierRow:
    models: set[str] = field(default_factory=set)
    tickets: int = 0
    integrated: int = 0
    fix_loops: int = 0
    tokens: int = 0
    cost_usd: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "models": sorted(self.models), "cost_usd": round(self.cost_usd, 6)}


def per_tier(result: RunResult) -> dict[str, TierRow]:
    rows: dict[str, TierRow] = defaultdict(TierRow)
    for o in result.outcomes.values():
        row = rows[o.tier or "-"]
        row.models |= {o.model} if o.model else set()
        row.tickets += 1
        row.integrated += o.status == TicketStatus.INTEGRATED
        row.fix_loops += o.fix_loops
        row.tokens += o.tokens
        row.cost_usd += o.cost
    return dict(rows)


def as_json(result: RunResult, phase: Phase) -> str:
    return json.dumps({
        "run_id": result.run_id, "phase": result.phase, "state": result.state,
        "exit_code": result.exit_code, "base": result.base_sha, "target": result.target,
        "target_sha": result.target_sha, "preflight": result.preflight,
        "checks_passed": result.checks_passed, "checks_reason": result.checks_reason,
        "culprit": result.culprit, "throughput": throughput(result, phase),
        "tiers": {tier: row.as_dict() for tier, row in per_tier(result).items()},
        "tickets": [{"id": o.ticket, "status": str(o.status), "reason": o.reason,
                     "tier": o.tier, "model": o.model, "fix_loops": o.fix_loops,
                     "reruns": o.reruns, "tokens": o.tokens, "cost_usd": round(o.cost, 6),
                     "seconds": round(duration(o), 2), "reviews": list(o.reviews)}
                    for o in result.outcomes.values()]}, indent=2)


def as_junit(result: RunResult) -> str:
    """One test case per ticket, so CI dashboards show tickets."""
    outcomes = list(result.outcomes.values())
    suite = ET.Element("testsuite", name=result.phase, tests=str(len(outcomes)),
                       failures=str(sum(o.status == TicketStatus.FAILED for o in outcomes)),
                       skipped=str(sum(o.status == TicketStatus.SKIPPED for o in outcomes)),
                       time=f"{max(0.0, result.ended - result.started):.2f}")
    for o in outcomes:
        case = ET.SubElement(suite, "testcase", name=o.ticket, classname=result.phase,
                             time=f"{duration(o):.2f}")
        if o.status == TicketStatus.FAILED:
            ET.SubElement(case, "failure", message=o.reason).text = o.reason
        elif o.status == TicketStatus.SKIPPED:
            ET.SubElement(case, "skipped", message=o.reason)
    root = ET.Element("testsuites", name=f"runner {result.run_id}")
    root.append(suite)
    return ET.tostring(root, encoding="unicode", xml_declaration=True)


def timeline_svg(result: RunResult) -> str:
    """A Gantt chart of the workers: one bar per ticket."""
    outcomes = list(result.outcomes.values())
    wall = max(1e-6, max([result.ended] + [o.ended for o in outcomes]) - result.started)
    left, width, row = 110, 640, 26
    svg = ET.Element("svg", xmlns="http://www.w3.org/2000/svg", width=str(left + width + 20),
                     height=str(row * (len(outcomes) + 1) + 10), role="img")
    ET.SubElement(svg, "title").text = f"timeline of run {result.run_id}"
    for i, o in enumerate(outcomes):
        y = 8 + i * row
        ET.SubElement(svg, "text", x="4", y=str(y + 15), attrib={"font-size": "12",
                      "font-family": "monospace"}).text = o.ticket
        x = left + width * max(0.0, o.started - result.started) / wall if o.started else left
        w = max(2.0, width * duration(o) / wall)
        bar = ET.SubElement(svg, "rect", x=f"{x:.1f}", y=str(y), width=f"{w:.1f}",
                            height=str(row - 8), fill=COLOURS.get(o.status, "#1565c0"),
                            attrib={"class": "ticket", "data-ticket": o.ticket})
        ET.SubElement(bar, "title").text = f"{o.ticket}: {o.status}, {duration(o):.1f}s"
    ET.SubElement(svg, "text", x=str(left), y=str(row * (len(outcomes) + 1)),
                  attrib={"font-size": "11"}).text = f"0 s … {wall:.1f} s"
    return ET.tostring(svg, encoding="unicode")


def as_markdown(result: RunResult, phase: Phase, svg_name: str) -> str:
    outcomes = list(result.outcomes.values())
    integrated = sum(o.status == TicketStatus.INTEGRATED for o in outcomes)
    flow = throughput(result, phase)
    lines = [
        f"# Phase {result.phase} — run {result.run_id}", "",
        f"**Result:** {'passed' if result.exit_code == 0 else 'FAILED'} — {integrated} of "
        f"{len(outcomes)} tickets integrated; run {result.state}.  ",
        f"**Base:** `{result.base_sha[:12]}` → **target** `{result.target}` at "
        f"`{(result.target_sha or 'not moved')[:12]}`  ",
        f"**Isolation self-test:** {result.preflight}  ",
        "**Phase checks:** " + ("none" if result.checks_passed is None else "passed"
                                if result.checks_passed else f"failed — {result.checks_reason}"),
        "", "## Tickets", "",
        "| ticket | tier | model | result | fix loops | reruns | tokens | cost | duration |",
        "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {o.ticket} | {o.tier} | {o.model or '-'} | {o.status} | {o.fix_loops} | "
              f"{o.reruns} | {o.tokens:,} | ${o.cost:.4f} | {duration(o):.1f}s |"
              for o in outcomes]
    lines += ["", "## Model performance per tier", "",
              "| tier | models | tickets | integrated | fix loops | tokens | cost |",
              "|---|---|---|---|---|---|---|"]
    lines += [f"| {tier} | {', '.join(sorted(row.models)) or '-'} | {row.tickets} | "
              f"{row.integrated} | {row.fix_loops} | {row.tokens:,} | ${row.cost_usd:.4f} |"
              for tier, row in per_tier(result).items()]
    lines += ["", "## Throughput", "",
              f"- Wall time: {flow['wall_seconds']:.1f}s; sum of ticket times: "
              f"{flow['ticket_seconds']:.1f}s (speedup {flow['speedup']:.2f}×).",
              f"- Critical path: {flow['critical_path_seconds']:.1f}s (parallel efficiency "
              f"{flow['parallel_efficiency']:.2f}: critical path / wall time).",
              "", "## Timeline", "", f"![timeline of the workers]({svg_name})", "",
              "## What failed and why", ""]
    failed = [o for o in outcomes if o.status != TicketStatus.INTEGRATED]
    lines += [f"- **{o.ticket}** ({o.status}): {o.reason}" for o in failed] or ["- nothing"]
    reviewed = [o for o in outcomes if o.reviews]
    if reviewed:
        lines += ["", "## Review verdicts", ""]
        lines += [f"- **{o.ticket}**: " + " → ".join(o.reviews) for o in reviewed]
    return "\n".join(lines) + "\n"


def write_report(result: RunResult, phase: Phase, fmt: str) -> tuple[str, Path | None]:
    """The report in ``fmt``; markdown is also saved in the run dir, beside its timeline."""
    if fmt == "json":
        return as_json(result, phase), None
    if fmt == "junit":
        return as_junit(result), None
    (result.run_dir / "timeline.svg").write_text(timeline_svg(result))
    text = as_markdown(result, phase, "timeline.svg")
    (result.run_dir / "report.md").write_text(text)
    return text, result.run_dir / "report.md"
