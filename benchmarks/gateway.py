"""A Messages API round trip through the runner's gateway (the worker's unix socket, key
swapped, usage metered into the ledger) against a direct call to the same fake upstream on
127.0.0.1, in the same run, with the same real SDK client. No Docker.

    python3 benchmarks/gateway.py [--calls 300] [--rounds 5]

Each round makes N calls one after another, alternating direct and gateway rounds so drift
hits both; the figure is the median per-call time. Last line: the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import anthropic  # noqa: E402
import httpx2 as httpx  # noqa: E402

from runner.gateway import SOCKET_NAME, Caller, Gateway  # noqa: E402
from runner.records.ledger import Ledger, default_prices  # noqa: E402
from tests.fakes.messages_api import FakeMessagesAPI, Reply, text  # noqa: E402

MODEL = "claude-haiku-4-5"


def calls(client: anthropic.Anthropic, n: int) -> float:
    """Seconds per call, over n calls."""
    start = time.perf_counter()
    for _ in range(n):
        client.messages.create(model=MODEL, max_tokens=16, system="Ticket: B",
                               messages=[{"role": "user", "content": "go"}])
    return (time.perf_counter() - start) / n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    total = (args.rounds + 1) * 2 * args.calls
    scripts = {"B": [Reply([text("ok")], stop_reason="end_turn")] * total}
    ledger = Ledger(prices=default_prices())
    with FakeMessagesAPI(scripts) as fake, tempfile.TemporaryDirectory() as tmp, \
            Gateway(Path(tmp) / "gw", ledger=ledger, egress=[], upstream=fake.url,
                    api_key="sk-bench") as gw, \
            gw.serve(Caller("B", None, lambda call: None, lambda conn: None)) as d:
        direct = anthropic.Anthropic(base_url=fake.url, api_key="sk-bench", max_retries=0)
        through = anthropic.Anthropic(
            base_url="http://gateway", api_key="placeholder", max_retries=0,
            http_client=httpx.Client(transport=httpx.HTTPTransport(uds=str(d / SOCKET_NAME))))
        calls(direct, args.calls)          # warm: connections, imports, caches
        calls(through, args.calls)
        plain, gated = [], []
        for _ in range(args.rounds):
            plain.append(calls(direct, args.calls))
            gated.append(calls(through, args.calls))
    metered = ledger.ticket("B").calls
    base, ours = statistics.median(plain), statistics.median(gated)
    print(f"{args.calls} calls x {args.rounds} rounds; median per call; "
          f"{metered} calls metered by the gateway")
    print(f"direct to the fake upstream (127.0.0.1) : {base * 1000:7.2f} ms")
    print(f"through the gateway (unix socket)       : {ours * 1000:7.2f} ms  "
          f"(+{(ours - base) * 1000:.2f} ms)")
    print(f"gateway/direct ratio: {ours / base:.2f}")


if __name__ == "__main__":
    main()
