"""The postmortem a run writes about itself: markdown (with an SVG timeline), JSON, JUnit."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from collections.abc import Mapping

from runner.host import HostRepo
from runner.records import PHASE_CHECKS, Asked, RunResult, TicketOutcome, TicketStatus, per_tier
from runner.text import one_line, tail, xml_text
from runner.views.connections import connections
from runner.views.throughput import throughput
from runner.views.timeline import timeline_svg


def as_json(result: RunResult, asked: Mapping[str, Asked]) -> str:
    """The run's document (as `--json` prints it), with its throughput."""
    from runner.records import run_document     # its schema (pydantic): for JSON alone

    return json.dumps(run_document(result).model_dump(mode="json")
                      | {"throughput": throughput(result, asked)}, indent=2)


SELFTEST_CASE, CHECKS_CASE, RUN_CASE = "isolation self-test", "phase checks", "run"


def as_junit(result: RunResult) -> str:
    """One test case per ticket, one for the isolation self-test and one for the phase
    checks, each with its output, so that a CI dashboard shows red exactly when runner's
    exit code is not 0."""
    cases = [_selftest_case(result), *(_ticket_case(result, o) for o in result.outcomes.values())]
    if result.checks_passed is not None:
        cases.append(_checks_case(result))
    if result.state not in ("finished", "refused"):
        cases.append(_case(RUN_CASE, 0.0, failure=f"the run was {result.state} before it "
                           f"finished; `runner resume {result.run_id}` finishes it"))
    failed = any(c.find("failure") is not None for c in cases)
    if not failed and result.exit_code != 0:
        # Tickets skipped with no failure behind them (the budget ran out): the phase did
        # not do what it was given, so they are failures, not skips.
        for case in cases:
            if (skip := case.find("skipped")) is not None:
                case.remove(skip)
                ET.SubElement(case, "failure", message=skip.get("message", ""),
                              type="skipped").text = skip.get("message", "")
    suite = ET.Element("testsuite", name=xml_text(result.phase), tests=str(len(cases)),
                       failures=str(sum(c.find("failure") is not None for c in cases)),
                       errors="0",
                       skipped=str(sum(c.find("skipped") is not None for c in cases)),
                       time=f"{max(0.0, result.ended - result.started):.2f}")
    for case in cases:
        case.set("classname", xml_text(result.phase))
        suite.append(case)
    root = ET.Element("testsuites", name=f"runner {result.run_id}")
    root.append(suite)
    return ET.tostring(root, encoding="unicode", xml_declaration=True)


def _case(name: str, seconds: float, *, failure: str | None = None, skipped: str | None = None,
          output: str = "") -> ET.Element:
    case = ET.Element("testcase", name=xml_text(name), time=f"{seconds:.2f}")
    if failure is not None:
        ET.SubElement(case, "failure", message=xml_text(one_line(failure))).text = \
            xml_text(failure)
    elif skipped is not None:
        ET.SubElement(case, "skipped", message=xml_text(one_line(skipped)))
    if output:
        ET.SubElement(case, "system-out").text = xml_text(output)
    return case


def _selftest_case(result: RunResult) -> ET.Element:
    if result.preflight == "skipped":
        return _case(SELFTEST_CASE, 0.0, skipped="skipped (--no-preflight)")
    if result.preflight.startswith("passed"):
        return _case(SELFTEST_CASE, 0.0, output=result.preflight)
    return _case(SELFTEST_CASE, 0.0, failure=result.refused or result.preflight)


def _ticket_case(result: RunResult, o: TicketOutcome) -> ET.Element:
    output = tail(result.run_dir / "logs" / f"{o.ticket}.log")
    if o.status == TicketStatus.FAILED:
        return _case(o.ticket, o.seconds, failure=o.reason, output=output)
    if o.status == TicketStatus.SKIPPED:
        return _case(o.ticket, o.seconds, skipped=o.reason, output=output)
    if o.status != TicketStatus.INTEGRATED:      # an interrupted run's: not done
        return _case(o.ticket, o.seconds, failure=f"not finished: {o.status}", output=output)
    return _case(o.ticket, o.seconds, output=output)


def _checks_case(result: RunResult) -> ET.Element:
    output = tail(result.run_dir / "logs" / f"{PHASE_CHECKS}.log")
    if result.checks_passed:
        return _case(CHECKS_CASE, 0.0, output=output)
    return _case(CHECKS_CASE, 0.0, failure=result.checks_reason, output=output)


def md(text: str) -> str:
    """Text a worker chose, as markdown shows it literally on one line: no HTML, no
    emphasis, links, table cells or headings of its own."""
    text = one_line(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    # Never at a line's start here: what opens a list or a heading there needs no escape.
    return re.sub(r"([\\`*_\[\]|~#])", r"\\\1", text)


def as_markdown(result: RunResult, asked: Mapping[str, Asked], svg_name: str) -> str:
    outcomes = list(result.outcomes.values())
    integrated = sum(o.status == TicketStatus.INTEGRATED for o in outcomes)
    flow = throughput(result, asked)
    target = (f"`{result.target}` at `{result.target_sha[:12]}`" if result.target_sha
              else f"`{result.target}` not moved")
    checks = ("none" if result.checks_passed is None else "passed" if result.checks_passed
              else f"failed — {md(result.checks_reason)}")
    lines = [
        f"# Phase {result.phase} — run {result.run_id}", "",
        f"**Result:** {'passed' if result.exit_code == 0 else 'FAILED'} — {integrated} of "
        f"{len(outcomes)} tickets integrated; run {result.state}.  ",
        f"**Base:** `{result.base_sha[:12]}` → **target** {target}  ",
        f"**Isolation self-test:** {md(result.refused or result.preflight)}  ",
        f"**Phase checks:** {checks}", "", "## Tickets", "",
        "| ticket | tier | model | result | fix loops | reruns | tokens | cost | time |",
        "|---|---|---|---|---|---|---|---|---|"]
    for o in outcomes:
        status = f"{o.status}, culprit of the phase checks" if result.culprit == o.ticket \
            else str(o.status)
        lines.append(f"| {o.ticket} | {o.tier} | {md(o.model) or '-'} | {status} | "
                     f"{o.fix_loops} | {o.reruns} | {o.tokens:,} | ${o.cost:.4f} | "
                     f"{o.seconds:.1f}s |")
    lines += ["", "## Model performance per tier", "",
              "| tier | models | tickets | integrated | fix loops | tokens | cost |",
              "|---|---|---|---|---|---|---|"]
    lines += [f"| {tier} | {md(', '.join(sorted(row.models))) or '-'} | {row.tickets} | "
              f"{row.integrated} | {row.fix_loops} | {row.tokens:,} | ${row.cost_usd:.4f} |"
              for tier, row in per_tier(result).items()]
    lines += ["", "## Throughput", "",
              f"- Wall time: {flow['wall_seconds']:.1f}s; sum of ticket times: "
              f"{flow['ticket_seconds']:.1f}s (speedup {flow['speedup']:.2f}×).",
              f"- Critical path: {flow['critical_path_seconds']:.1f}s (parallel efficiency "
              f"{flow['parallel_efficiency']:.2f}: critical path / wall time).",
              "", "## Timeline", "", f"![timeline of the workers]({svg_name})", ""]
    rerun = [o for o in outcomes if len(o.attempts) > 1]
    if rerun:
        lines += ["## Attempts", ""]
        for o in rerun:
            lines.append(f"- **{o.ticket}**:")
            lines += [f"  {a.number + 1}. {a.result} after {a.seconds:.1f}s, from "
                      f"`{(a.start or '?')[:12]}`" + (f": {md(a.reason)}" if a.reason else "")
                      + (f" (kept at `{a.ref}`)" if a.ref else "") for a in o.attempts]
        lines.append("")
    lines += ["## What failed and why", ""]
    failed = [o for o in outcomes if o.status != TicketStatus.INTEGRATED]
    lines += [f"- **{o.ticket}** ({o.status}): {md(o.reason)}" for o in failed] or ["- nothing"]
    if result.culprit:
        lines.append(f"- the phase checks fail from **{result.culprit}** on (it is integrated "
                     "in the candidate, not on the target)")
    reached = {o.ticket: rows for o in outcomes
               if (rows := connections(result.run_dir / "transcripts" / f"{o.ticket}.jsonl"))}
    if reached:
        lines += ["", "## Egress through the gateway", "",
                  "| ticket | host | verdict | connections | bytes up | bytes down |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {ticket} | {md(row.host)}:{row.port} | "
                  f"{'allowed' if row.allowed else 'refused: ' + md(row.reason)} | "
                  f"{row.count} | {row.bytes_up:,} | {row.bytes_down:,} |"
                  for ticket, rows in reached.items() for row in rows]
    fetching = [o for o in outcomes if o.fetched.any]
    if fetching:
        lines += ["", "## Dependencies through the cache", "",
                  "| ticket | from the cache | bytes | from upstream | bytes | not served |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {o.ticket} | {o.fetched.cache_requests} | {o.fetched.cache_bytes:,} | "
                  f"{o.fetched.upstream_requests} | {o.fetched.upstream_bytes:,} | "
                  f"{o.fetched.failed} |" for o in fetching]
    reviewed = [o for o in outcomes if o.reviews]
    if reviewed:
        lines += ["", "## Review verdicts", ""]
        lines += [f"- **{o.ticket}**: " + " → ".join(md(r) for r in o.reviews)
                  for o in reviewed]
    return "\n".join(lines) + "\n"


def write_report(result: RunResult, asked: Mapping[str, Asked], fmt: str,
                 host: HostRepo | None = None) -> tuple[str, Path | None]:
    """The report in ``fmt``; markdown is also saved in the run dir, beside its timeline, and
    HTML as one file there (its diffs read from ``host``)."""
    if fmt == "json":
        return as_json(result, asked), None
    if fmt == "junit":
        return as_junit(result), None
    if fmt == "html":
        from runner.views.diffs import diff_lines
        from runner.views.htmlreport import as_html

        assert host is not None
        page = as_html(result, asked, lambda a: diff_lines(host, a.start or "", a.tip or ""))
        (result.run_dir / "report.html").write_text(page)
        return page, result.run_dir / "report.html"
    (result.run_dir / "timeline.svg").write_text(timeline_svg(result))
    text = as_markdown(result, asked, "timeline.svg")
    (result.run_dir / "report.md").write_text(text)
    return text, result.run_dir / "report.md"
