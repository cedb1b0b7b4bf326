"""The postmortem as one self-contained HTML file (`runner report --format html`): no script,
no network, nothing outside the file. The summary, the timeline, model performance per
tier, what failed and why, and a card per ticket with its story (`runner show`) and its
diff, coloured and folded.

Every byte a worker chose (names, output, reasons, diffs) is made printable, then escaped
for HTML, before it is written; the timeline's SVG escapes as XML does."""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable, Iterator, Mapping

from runner.records import (Asked, Attempt, RunResult, TicketOutcome, TicketStatus, attempt_of,
                            per_tier)
from runner.text import printable
from runner.views.diffs import line_kind
from runner.views.throughput import throughput
from runner.views.ticketview import ticket_story
from runner.views.timeline import timeline_svg

DIFF_LINES = 3000         # lines of a ticket's diff the page holds; it says how many more
DiffOf = Callable[[Attempt], Iterable[str]]

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 1100px;
       color: #1b1f23; padding: 0 16px; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; }
table { border-collapse: collapse; } td, th { border: 1px solid #d0d7de; padding: 3px 8px; }
th { background: #f6f8fa; text-align: left; }
.passed { color: #1a7f37; } .failed { color: #cf222e; }
.card { border: 1px solid #d0d7de; border-radius: 6px; margin: 10px 0; padding: 6px 12px; }
.card > summary { cursor: pointer; font-weight: 600; }
.status { font-weight: normal; margin-left: 8px; }
pre { background: #f6f8fa; padding: 8px; overflow-x: auto; font-size: 12px;
      white-space: pre-wrap; word-break: break-all; }
.diff .add { color: #116329; background: #dafbe1; } .diff .del { color: #82071e;
  background: #ffebe9; } .diff .hunk { color: #0550ae; } .diff .meta { font-weight: 600; }
"""


def esc(text: object) -> str:
    """Text for HTML: printable (no terminal escapes, no control characters), then escaped
    (markup, and quotes for attributes)."""
    return html.escape(printable(str(text)), quote=True)


def as_html(result: RunResult, asked: Mapping[str, Asked], diff_of: DiffOf) -> str:
    outcomes = list(result.outcomes.values())
    integrated = sum(o.status == TicketStatus.INTEGRATED for o in outcomes)
    passed = result.exit_code == 0
    title = f"Phase {result.phase} — run {result.run_id}"
    parts = [
        "<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
        # Nothing may load from anywhere: the page is all there is.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        'style-src \'unsafe-inline\'; img-src data:">',
        f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        *_summary(result, asked, integrated, len(outcomes), passed),
        "<h2>Timeline</h2>", timeline_svg(result),
        "<h2>Model performance per tier</h2>", *_tiers(result),
        "<h2>What failed and why</h2>", *_failures(result, outcomes),
        "<h2>Tickets</h2>",
        *(line for o in outcomes for line in _card(result, asked, o, diff_of)),
        "</body></html>"]
    return "\n".join(parts) + "\n"


def _summary(result: RunResult, asked: Mapping[str, Asked], integrated: int, tickets: int,
             passed: bool) -> Iterator[str]:
    flow = throughput(result, asked)
    target = (f"{esc(result.target)} at {result.target_sha[:12]}" if result.target_sha
              else f"{esc(result.target)} not moved")
    checks = ("none" if result.checks_passed is None else "passed" if result.checks_passed
              else f"failed: {esc(result.checks_reason)}")
    verdict = "passed" if passed else "FAILED"
    yield "<table>"
    for name, value in (
            ("result", f'<span class="{"passed" if passed else "failed"}">{verdict}</span>: '
                       f"{integrated} of {tickets} tickets integrated; run {esc(result.state)}"),
            ("base", result.base_sha[:12]), ("target", target),
            ("isolation self-test", esc(result.refused or result.preflight)),
            ("phase checks", checks),
            ("time", f"{flow['wall_seconds']:.1f}s wall; tickets {flow['ticket_seconds']:.1f}s "
                     f"(speedup {flow['speedup']:.2f}×); critical path "
                     f"{flow['critical_path_seconds']:.1f}s")):
        yield f"<tr><th>{name}</th><td>{value}</td></tr>"
    yield "</table>"


def _tiers(result: RunResult) -> Iterator[str]:
    yield ("<table><tr><th>tier</th><th>models</th><th>tickets</th><th>integrated</th>"
           "<th>fix loops</th><th>tokens</th><th>cost</th></tr>")
    for tier, row in per_tier(result).items():
        yield (f"<tr><td>{esc(tier)}</td><td>{esc(', '.join(sorted(row.models)) or '-')}</td>"
               f"<td>{row.tickets}</td><td>{row.integrated}</td><td>{row.fix_loops}</td>"
               f"<td>{row.tokens:,}</td><td>${row.cost_usd:.4f}</td></tr>")
    yield "</table>"


def _failures(result: RunResult, outcomes: list[TicketOutcome]) -> Iterator[str]:
    failed = [o for o in outcomes if o.status != TicketStatus.INTEGRATED]
    yield "<ul>"
    for o in failed:
        yield f"<li><b>{esc(o.ticket)}</b> ({esc(o.status)}): {esc(o.reason)}</li>"
    if result.culprit:
        yield (f"<li>the phase checks fail from <b>{esc(result.culprit)}</b> on (it is in "
               "the candidate, not on the target)</li>")
    if not failed and not result.culprit:
        yield "<li>nothing</li>"
    yield "</ul>"


def _card(result: RunResult, asked: Mapping[str, Asked], outcome: TicketOutcome,
          diff_of: DiffOf) -> Iterator[str]:
    ticket = asked.get(outcome.ticket)
    state = "passed" if outcome.status == TicketStatus.INTEGRATED else "failed"
    opened = "" if state == "passed" else " open"      # what failed is shown unfolded
    yield (f'<details class="card" id="ticket-{esc(outcome.ticket)}"{opened}><summary>'
           f'{esc(outcome.ticket)}<span class="status {state}">{esc(outcome.status)}</span>'
           "</summary>")
    story = "\n".join(ticket_story(result, ticket, outcome))
    yield f"<pre>{esc(story)}</pre>"
    last = outcome.attempts[-1] if outcome.attempts else attempt_of(outcome, 0)
    if last.tip and last.start:
        yield "<details><summary>diff</summary>"
        yield f'<pre class="diff">{_diff(diff_of(last))}</pre></details>'
    yield "</details>"


def _diff(lines: Iterable[str]) -> str:
    shown, more = [], 0
    for line in lines:
        if len(shown) >= DIFF_LINES:
            more += 1
            continue
        kind = line_kind(line)
        shown.append(f'<span class="{kind}">{esc(line)}</span>' if kind else esc(line))
    if more:
        shown.append(f"[… {more:,} more lines: runner diff shows them all]")
    return "\n".join(shown)
