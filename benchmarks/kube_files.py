"""Sending this machine's Claude Code binary into a Pod (what a claude-code ticket's Pod costs
on Kubernetes: a Pod cannot mount it) against the floor it stands on, on the test cluster
(tests/engines/kube.py), in the same run:

- floor: the same bytes on one exec stream's stdin into `cat > /dev/null` in the Pod (the API
  server and kubelet carrying them, nothing written);
- runner's send (podlife.send_files): into the Pod's emptyDir, counted, chmod'ed, moved.

    python3 benchmarks/kube_files.py [--rounds 3]

Last line: send / floor.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import docker  # noqa: E402

from runner.agents.claude_binary import bundled_binary  # noqa: E402
from runner.sandbox import CLAUDE_BINARY, Limits, Mount, SandboxSpec  # noqa: E402
from runner.sandbox.kube import load_cluster  # noqa: E402
from runner.sandbox.kube.execs import chunks  # noqa: E402
from runner.sandbox.kube.podlife import send_files, start_pod  # noqa: E402
from tests.engines.kube import running_cluster  # noqa: E402

IMAGE = "runner-worker:latest"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    binary = bundled_binary()
    if binary is None or not binary.is_file():
        raise SystemExit("no Claude Code binary: ./setup.sh --dev installs claude-agent-sdk")
    size = binary.stat().st_size
    with running_cluster(docker.from_env()) as cluster:
        print(f"loading {IMAGE} into the test cluster: {cluster.load(IMAGE):.1f}s")
        os.environ["KUBECONFIG"] = str(cluster.kubeconfig)
        kube = load_cluster(None)
        mount = Mount(binary, CLAUDE_BINARY, read_only=True)
        spec = SandboxSpec(name="bench-files", image=IMAGE, env={},
                           labels={"runner.run": "bench-files"},
                           limits=Limits(cpus=1.0, memory="1g", pids=256), files=(mount,))
        pod = start_pod(kube, spec, "bench-files")
        floor, send = [], []
        try:
            for _ in range(args.rounds):
                with binary.open("rb") as data:
                    started = time.perf_counter()
                    kube.exec(pod, ["sh", "-c", f"head -c {size} > /dev/null"],
                              lambda _s, _c: None, stdin=chunks(data.read))
                    floor.append(time.perf_counter() - started)
                started = time.perf_counter()
                send_files(kube, pod, [mount])
                send.append(time.perf_counter() - started)
        finally:
            kube.delete_pod(pod)
    med = statistics.median
    print(f"{size / 2**20:.0f} MiB on one exec into /dev/null (the floor): {med(floor):5.1f} s "
          f"({size / 2**20 / med(floor):.0f} MiB/s)")
    print(f"send_files into the Pod's emptyDir             : {med(send):5.1f} s")
    print(f"send / floor: {med(send) / med(floor):.2f}")


if __name__ == "__main__":
    main()
