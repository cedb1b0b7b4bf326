"""The gateway's way into a Pod (the relay and runner's tunnel) against the floor it stands on,
on the test cluster (tests/engines/kube.py), in the same run:

- floor: one exec into the Pod from here (`true`), which is what each new connection's JOIN
  costs, started ahead;
- a request on a new connection, timed inside the Pod (curl to 127.0.0.1:3128, through the
  relay and an exec stream to an HTTP stub on a unix socket here);
- a request on a kept connection (one curl, many URLs).

    python3 benchmarks/kube.py [--requests 40]

Last line: new-connection request / exec floor.
"""

from __future__ import annotations

import argparse
import http.server
import os
import socketserver
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import docker  # noqa: E402

from runner.sandbox import Limits, SandboxSpec  # noqa: E402
from runner.sandbox.kube import load_cluster  # noqa: E402
from runner.sandbox.kube.provider import KubeSandboxes  # noqa: E402
from tests.engines.kube import running_cluster  # noqa: E402

IMAGE = "runner-worker:latest"


class _Stub(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"        # connections stay open: the kept-connection figure

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"ok\n")

    def address_string(self) -> str:
        return "worker"

    def log_message(self, *args: object) -> None:
        pass


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def in_pod_ms(sandbox, script: str) -> list[float]:
    """Milliseconds per line the Pod printed (each a duration in ns)."""
    done = sandbox.exec(["bash", "-c", script], timeout=600)
    if not done.ok:
        raise SystemExit(f"in the Pod: {done.output[-2000:]}")
    return [int(line) / 1e6 for line in done.output.split() if line.isdigit()]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=40)
    args = parser.parse_args()
    n = args.requests
    with running_cluster(docker.from_env()) as cluster, \
            tempfile.TemporaryDirectory() as tmp:
        print(f"loading {IMAGE} into the test cluster: {cluster.load(IMAGE):.1f}s")
        socket_path = Path(tmp) / "gateway.sock"
        stub = _UnixServer(str(socket_path), _Stub)
        threading.Thread(target=stub.serve_forever, daemon=True).start()
        os.environ["KUBECONFIG"] = str(cluster.kubeconfig)
        provider = KubeSandboxes(load_cluster(None), run_id="bench-kube", root=Path(tmp))
        spec = SandboxSpec(name="bench-kube", image=IMAGE, env={},
                           labels={"runner.run": "bench-kube"},
                           limits=Limits(cpus=1.0, memory="512m", pids=256),
                           gateway=socket_path)
        with provider.open(spec) as sandbox:
            floor = []
            for _ in range(n):
                started = time.perf_counter()
                sandbox.exec(["true"], timeout=60)
                floor.append((time.perf_counter() - started) * 1000)
            timed = ('s=$(date +%s%N); curl -sS -o /dev/null http://127.0.0.1:3128/x; '
                     'echo $(( $(date +%s%N) - s ))')
            fresh = in_pod_ms(sandbox, f"for i in $(seq {n}); do {timed}; done")
            urls = " ".join(["http://127.0.0.1:3128/x"] * n)
            # One curl, n URLs of one host: one connection, kept.
            kept = [ms / n for ms in in_pod_ms(
                sandbox, "s=$(date +%s%N); curl -sS " + "-o /dev/null " * n + f"{urls}; "
                "echo $(( $(date +%s%N) - s ))")]
        provider.settle()
        stub.shutdown()
    med = statistics.median
    print(f"exec of `true` from here (the floor)       : {med(floor):6.1f} ms")
    print(f"request on a new connection, in the Pod    : {med(fresh):6.1f} ms "
          f"(max {max(fresh):.0f})")
    print(f"request on a kept connection, in the Pod   : {med(kept):6.1f} ms")
    print(f"new connection / exec floor: {med(fresh) / med(floor):.2f}")


if __name__ == "__main__":
    main()
