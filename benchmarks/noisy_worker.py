"""Memory of the runner while a worker prints N MB without a newline, against the same run
with a worker that prints nothing (the baseline), measured in the same invocation.

    python3 benchmarks/noisy_worker.py [--mb 300] [--timeout 600]

Runs `python -m runner run --json --no-preflight` on a throwaway repo: one ticket prints the
bytes, a bystander writes a file. Samples the runner's VmHWM / VmRSS from /proc/<pid>/status
and reports peak RSS, its log file's size and the wall time. Needs Docker and the worker
image. A runner that does not end by --timeout is killed and reported as such.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def status_kb(pid: int, key: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def one_run(root: Path, mb: int, timeout: float) -> dict[str, object]:
    repo = root / f"repo-{mb}"
    repo.mkdir()
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@example.invalid",
           "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@example.invalid"}
    for argv in (["init", "-q", "-b", "main"], ["commit", "-q", "--allow-empty", "-m", "base"]):
        subprocess.run(["git", *argv], cwd=repo, check=True, env=env)
    noisy = (f"head -c {mb * 1_000_000} /dev/zero | tr '\\0' x\necho\necho done > noisy.txt"
             if mb else "echo done > noisy.txt")
    phase = root / f"phase-{mb}.yaml"
    phase.write_text(yaml.safe_dump({"name": f"noisy-{mb}", "tickets": [
        {"id": "noisy", "agent": "script", "run": noisy, "timeout": int(timeout)},
        {"id": "bystander", "agent": "script", "run": "echo ok > bystander.txt"}]}))
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "runner", "run", str(phase), "--repo",
                             str(repo), "--json", "--no-preflight"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    peak_rss = peak_hwm = 0
    while proc.poll() is None:
        peak_rss = max(peak_rss, status_kb(proc.pid, "VmRSS") or 0)
        peak_hwm = max(peak_hwm, status_kb(proc.pid, "VmHWM") or 0)
        if time.monotonic() - started > timeout:
            proc.kill()
            break
        time.sleep(0.1)
    proc.communicate()
    # A killed run leaves its containers: `runner clean` removes this repo's, no other.
    subprocess.run([sys.executable, "-m", "runner", "clean", "--repo", str(repo)], cwd=ROOT,
                   capture_output=True)
    logs = list((repo / ".git" / "runner").glob("*/logs/noisy.log"))
    return {"mb": mb, "seconds": round(time.monotonic() - started, 1),
            "ended": proc.returncode is not None and proc.returncode >= 0,
            "exit": proc.returncode, "peak_rss_mb": round(peak_rss / 1024, 1),
            "vm_hwm_mb": round(peak_hwm / 1024, 1),
            "log_mb": round(logs[0].stat().st_size / 2**20, 2) if logs else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=300)
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="runner-bench-noisy-") as tmp:
        base = one_run(Path(tmp), 0, args.timeout)
        noisy = one_run(Path(tmp), args.mb, args.timeout)
    for row in (base, noisy):
        print(row)
    print(f"peak RSS: {noisy['vm_hwm_mb']} MB against {base['vm_hwm_mb']} MB "
          f"(+{float(noisy['vm_hwm_mb']) - float(base['vm_hwm_mb']):.1f} MB, "
          f"x{float(noisy['vm_hwm_mb']) / float(base['vm_hwm_mb']):.2f})")


if __name__ == "__main__":
    main()
