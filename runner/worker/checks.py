"""The ticket's checks, run in its worker's sandbox; the first failure is the result."""

from __future__ import annotations

import time
from collections.abc import Callable

from runner.records import CheckResult, LogWriter
from runner.sandbox import STRICT_BASH, Sandbox


def run_checks(sandbox: Sandbox, checks: list[str], *, log: LogWriter,
               on_output: Callable[[str], None], deadline: float) -> CheckResult:
    """Run each check in /workspace; the first failure is the result."""
    for check in checks:
        log.write(f"$ [check] {check}\n")
        ran = sandbox.exec([*STRICT_BASH, check], on_output=on_output,
                           timeout=max(1.0, deadline - time.monotonic()))
        why = (f"was stopped: {ran.stopped}" if ran.stopped else "timed out" if ran.timed_out
               else f"exited with {ran.exit_code}")
        log.write(f"[check] {'passed' if ran.ok else why}: {check}\n")
        if not ran.ok:
            return CheckResult(ok=False, reason=f"check `{check}` {why}", output=ran.output)
    return CheckResult(ok=True)
