"""A claude-code Pod's start against a plain Pod's, on the test cluster (tests/engines/kube.py),
in the same run: the time start_pod takes until the Pod runs with what it was given.

- floor: a Pod of the worker's image with nothing carried in;
- before: a Pod given the Claude Code binary while no node has the image that carries it
  (each Pod is sent its own copy over an exec, as every Pod was before kube/carried.py);
- after: the same Pod once the node has that image (loaded here, as a registry would give
  it): nothing is sent.

    python3 benchmarks/kube_claude_start.py [--rounds 3]

Last lines: before / floor and after / floor.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import docker  # noqa: E402

from runner.agents.claude_binary import bundled_binary  # noqa: E402
from runner.sandbox import CLAUDE_BINARY, Limits, Mount, SandboxSpec  # noqa: E402
from runner.sandbox.kube import carried, load_cluster  # noqa: E402
from runner.sandbox.kube.nodes import on_every_node  # noqa: E402
from runner.sandbox.kube.podlife import start_pod  # noqa: E402
from tests.engines.kube import running_cluster  # noqa: E402

IMAGE = "runner-worker:latest"


def starts(kube, spec: SandboxSpec, rounds: int) -> list[float]:
    took = []
    for _ in range(rounds):
        started = time.perf_counter()
        pod = start_pod(kube, spec, "bench-claude")
        took.append(time.perf_counter() - started)
        kube.delete_pod(pod)
    return took


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    binary = bundled_binary()
    if binary is None or not binary.is_file():
        raise SystemExit("no Claude Code binary: ./setup.sh --dev installs claude-agent-sdk")
    with running_cluster(docker.from_env()) as cluster:
        print(f"loading {IMAGE} into the test cluster: {cluster.load(IMAGE):.1f}s")
        os.environ["KUBECONFIG"] = str(cluster.kubeconfig)
        kube = load_cluster(None)
        plain = SandboxSpec(name="bench-claude", image=IMAGE, env={},
                            labels={"runner.run": "bench-claude"},
                            limits=Limits(cpus=0.5, memory="1g", pids=256))
        claude = replace(plain, files=(Mount(binary, CLAUDE_BINARY, read_only=True),))
        started = time.perf_counter()
        tag = carried.carried_image(IMAGE, claude.files)
        assert tag is not None, "this machine's Docker engine could not build the image"
        print(f"{tag}: built (or found) here in {time.perf_counter() - started:.1f}s")
        starts(kube, plain, 1)                       # the node warm for both
        floor = starts(kube, plain, args.rounds)
        before = starts(kube, claude, args.rounds)   # no node has the image yet: a copy
        print(f"loading {tag} into the test cluster: {cluster.load(tag):.1f}s")
        deadline = time.monotonic() + 120            # until the node's status lists it
        while not on_every_node(kube, tag):
            if time.monotonic() > deadline:
                raise SystemExit(f"the node never listed {tag}")
            time.sleep(1)
        carried._carriers.clear()                    # asked again: the node has it now
        after = starts(kube, claude, args.rounds)
    med = statistics.median
    print(f"a plain Pod (the floor)                 : {med(floor):5.2f} s")
    print(f"a claude-code Pod, sent its own copy     : {med(before):5.2f} s")
    print(f"a claude-code Pod, its node has the image: {med(after):5.2f} s")
    print(f"before / floor: {med(before) / med(floor):.2f}")
    print(f"after / floor: {med(after) / med(floor):.2f}")


if __name__ == "__main__":
    main()
