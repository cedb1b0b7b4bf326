"""Per-worker provisioning cost, the isolation self-test's cost, and extra disk per workspace,
against raw baselines measured in the same run.

    python3 benchmarks/provision.py [--files 2000] [--rounds 5]

Provisioning = linked clone + private Gradle home + hardened container ready for its first
exec. Once per run: the run's object store (what base reaches). Baselines: a bare
`docker create/start/exec/remove` of the same image, and a full `git clone --no-hardlinks`
(what a copied clone would cost, in time and on disk).
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runner.records.events import EventCollector  # noqa: E402
from runner.host.gitops import open_host_repo  # noqa: E402
from runner.host.objectstore import STORE, RunObjects  # noqa: E402
from runner.phase.load import load_phase# noqa: E402
from runner.sandbox.docker.client import docker_client  # noqa: E402
from runner.sandbox.docker.local import DockerSandboxes  # noqa: E402
from runner.isolation.selftest import run_selftest  # noqa: E402
from runner.worker.context import RunContext  # noqa: E402
from runner.worker.lifecycle import sandbox_spec  # noqa: E402
from runner.sandbox.docker.workspace import create_workspace  # noqa: E402

IMAGE = "runner-worker:latest"


def du(path: Path) -> int:
    return int(subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True,
                              check=True).stdout.split()[0])


def make_repo(root: Path, files: int) -> Path:
    repo = root / "repo"
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    for i in range(files):
        d = repo / f"src/pkg{i % 40}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"File{i}.java").write_text(f"class File{i} {{ // {secrets.token_hex(2000)}\n}}\n")
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b",
           "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@b"}
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(repo), "commit", "-qm", "base"], check=True, env=env)
    subprocess.run(["git", "-C", str(repo), "gc", "-q"], check=True)
    return repo


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    client = docker_client()
    with tempfile.TemporaryDirectory(prefix="runner-bench-") as tmp:
        root = Path(tmp)
        repo = make_repo(root, args.files)
        host = open_host_repo(repo)
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], text=True,
                              capture_output=True, check=True).stdout.strip()
        (root / "p.yaml").write_text("name: bench\ntickets:\n"
                                     "  - {id: T, agent: script, run: 'true'}\n")
        phase = load_phase(root / "p.yaml")
        run_id = f"bench-{secrets.token_hex(3)}"
        t0 = time.perf_counter()
        objects = RunObjects(host, path=root / "run" / STORE, run_id=run_id, base=head)
        objects.ensure(head)
        store_seconds = time.perf_counter() - t0
        ctx = RunContext(run_id=run_id, phase=phase, host=host, root=root / "run",
                         objects=objects, provider=DockerSandboxes(client, root=root / "run"),
                         sink=EventCollector())

        def plain_start() -> object:
            c = client.containers.create(IMAGE, ["sleep", "infinity"],
                                         labels={"runner.run": run_id, "runner.ticket": "raw"})
            c.start()
            c.exec_run(["true"])
            return c

        raw, raw_pair, ours, clone_only = [], [], [], []
        for i in range(args.rounds):
            t0 = time.perf_counter()
            c = plain_start()
            raw.append(time.perf_counter() - t0)
            c.remove(force=True)
            # Two at once: the self-test's floor (its two probes must run side by side).
            t0 = time.perf_counter()
            with ThreadPoolExecutor(2) as pool:
                pair = list(pool.map(lambda _: plain_start(), range(2)))
            raw_pair.append(time.perf_counter() - t0)
            for c in pair:
                c.remove(force=True)

            t0 = time.perf_counter()
            create_workspace(objects, clone=root / f"run/ws{i}",
                                  gradle_home=root / f"run/g{i}", branch=f"runner/bench/T{i}",
                                  start=head)
            clone_only.append(time.perf_counter() - t0)
            t0 = time.perf_counter()     # the provider makes its own checkout, then the box
            with ctx.provider.open(sandbox_spec(ctx, f"T{i}", ctx.checkout(f"T{i}", head))) \
                    as sandbox:
                sandbox.exec(["true"], timeout=60)
                ours.append(time.perf_counter() - t0)
            ctx.provider.settle()         # its removal goes in the background

        selftest = []
        for i in range(args.rounds):
            probe_ctx = RunContext(run_id=f"{run_id}-s{i}", phase=phase, host=host,
                                   root=root / f"selftest{i}", objects=objects,
                                   provider=ctx.provider, sink=ctx.sink)
            t0 = time.perf_counter()
            assert run_selftest(probe_ctx, head).passed
            selftest.append(time.perf_counter() - t0)
            ctx.provider.settle()     # its scratch goes in the background: not the next's

        full = root / "full-copy"
        t0 = time.perf_counter()
        subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(repo), str(full)], check=True)
        full_seconds = time.perf_counter() - t0
        repo_size, ws_size, full_size = du(repo), du(root / "run/ws0"), du(full)
        store_size = du(objects.path)
        ws_git = du(root / "run/ws0/.git")

    med = statistics.median
    print(f"repo: {args.files} files, {repo_size / 2**20:.1f} MiB (worktree + .git)")
    print(f"raw container create+start+exec  : {med(raw) * 1000:7.0f} ms (median of {args.rounds})")
    print(f"linked clone + Gradle home      : {med(clone_only) * 1000:7.0f} ms")
    print(f"provisioning (clone + container): {med(ours) * 1000:7.0f} ms  "
          f"ratio to raw container: {med(ours) / med(raw):.2f}")
    print(f"two raw containers at once      : {med(raw_pair) * 1000:7.0f} ms")
    print(f"isolation self-test (2 probes)  : {med(selftest) * 1000:7.0f} ms  "
          f"ratio to raw container: {med(selftest) / med(raw):.2f}; to two at once: "
          f"{med(selftest) / med(raw_pair):.2f} (goal <= 1.3)")
    print(f"extra disk per workspace        : {ws_size / 2**20:7.1f} MiB "
          f"(.git {ws_git / 2**10:.0f} KiB; the rest is the checked-out tree)")
    print(f"run object store (once per run) : {store_seconds * 1000:7.0f} ms, "
          f"{store_size / 2**20:.1f} MiB  ratio to a full clone's time: "
          f"{store_seconds / full_seconds:.2f}")
    print(f"full --no-hardlinks clone       : {full_size / 2**20:7.1f} MiB  "
          f"ratio workspace/full copy: {ws_size / full_size:.2f}; "
          f"workspace/repo: {ws_size / repo_size:.2f}")


if __name__ == "__main__":
    main()
