"""A soak on the test cluster (tests/engines/kube.py): the same four-ticket phase over claims,
one Pod deleted from outside mid-ticket, run again and again; every run must be green.

    python3 benchmarks/kube_soak.py [--runs 10]

Each run: `runner run --engine kubernetes` (a subprocess) of four script tickets with
``retries: 1``; the SLOW ticket commits, then sleeps, and its Pod is deleted while it sleeps;
the others run beside it. Green: exit 0, all four integrated, SLOW in two attempts (stopped,
integrated). The baseline is the same phase with nothing deleted, run last on the same
cluster. Printed: each run's wall time and result, then the count green and the median wall
time against the baseline's. Exit 1 when any run was not green.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import docker  # noqa: E402

from tests.engines.kube import running_cluster  # noqa: E402
from tests.helpers import make_repo, write_phase  # noqa: E402

IMAGE = "runner-worker:latest"
SLOW = """case $HOSTNAME in
  *-rerun1-*) echo slow > slow.txt ;;
  *) echo before > before.txt; git add -A; git commit -qm 'SLOW: before'
     echo committed-before; sleep 20 ;;
esac"""


def phase(root: Path) -> tuple[Path, Path]:
    repo = make_repo(root / "repo")
    path = write_phase(root / "p.yaml", {
        "name": "soak", "concurrency": 4, "resources": {"cpus": 0.2, "memory": "512m"},
        "kubernetes": {"workspaces": "claim"}, "tickets": [
            {"id": "SLOW", "agent": "script", "retries": 1, "run": SLOW},
            *({"id": name, "agent": "script", "retries": 1,
               "run": f"sleep 2; echo {name} > {name}.txt"} for name in ("A", "B", "C"))]})
    return repo, path


def delete_slow_once(core, repo: Path, stop: threading.Event, deleted: list[str]) -> None:
    """SLOW's first Pod, once its log says it committed and sleeps."""
    while not stop.is_set():
        if any("committed-before" in log.read_text()
               for log in (repo / ".git" / "runner").glob("*/logs/SLOW.log")):
            for pod in core.list_namespaced_pod("default").items:
                labels = json.loads((pod.metadata.annotations or {}).get("runner.labels", "{}"))
                if labels.get("runner.ticket") == "SLOW" and pod.status.phase == "Running":
                    core.delete_namespaced_pod(pod.metadata.name, "default",
                                               grace_period_seconds=0)
                    deleted.append(pod.metadata.name)
                    return
        time.sleep(0.2)


def one_run(root: Path, env: dict[str, str], core, *, delete: bool) -> tuple[float, str]:
    repo, path = phase(root)
    stop, deleted = threading.Event(), []
    deleter = threading.Thread(target=delete_slow_once, args=(core, repo, stop, deleted),
                               daemon=True)
    if delete:
        deleter.start()
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "runner", "run", str(path), "--repo",
                           str(repo), "--engine", "kubernetes", "--no-preflight", "--json"],
                          env=env, capture_output=True, text=True)
    took = time.perf_counter() - started
    stop.set()
    if delete:
        deleter.join()
    try:
        doc = json.loads(proc.stdout)
    except ValueError:
        return took, f"exit {proc.returncode}, no document: {proc.stderr[-500:]}"
    tickets = {t["id"]: t for t in doc["tickets"]}
    results = [a["result"] for a in tickets.get("SLOW", {}).get("attempts", [])]
    if proc.returncode != 0 or any(t["status"] != "integrated" for t in tickets.values()):
        return took, f"exit {proc.returncode}: " + ", ".join(
            f"{k} {t['status']} ({t.get('reason', '')[:160]})" for k, t in tickets.items())
    if delete and (not deleted or results != ["stopped", "integrated"]):
        return took, f"SLOW's attempts {results}, Pods deleted {deleted}"
    subprocess.run([sys.executable, "-m", "runner", "clean", doc["run_id"], "--repo",
                    str(repo)], env=env, capture_output=True)
    return took, "green"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    from kubernetes import client, config

    with running_cluster(docker.from_env()) as cluster, \
            tempfile.TemporaryDirectory() as tmp:
        cluster.load(IMAGE)
        env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig)}
        core = client.CoreV1Api(config.new_client_from_config(
            config_file=str(cluster.kubeconfig)))
        times, green = [], 0
        for number in range(1, args.runs + 1):
            took, said = one_run(Path(tmp) / f"run{number}", env, core, delete=True)
            times.append(took)
            green += said == "green"
            print(f"run {number}: {took:.1f}s {said}", flush=True)
        # Last: the first run on a new cluster also pays for what any first run does.
        base, said = one_run(Path(tmp) / "baseline", env, core, delete=False)
        print(f"baseline (nothing deleted): {base:.1f}s {said}", flush=True)
    median = statistics.median(times)
    print(f"{green}/{args.runs} green; wall median {median:.1f}s (min {min(times):.1f}, "
          f"max {max(times):.1f}) against {base:.1f}s with nothing deleted: "
          f"{median / base:.2f}x")
    sys.exit(0 if green == args.runs else 1)


if __name__ == "__main__":
    main()
