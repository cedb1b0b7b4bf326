"""Who drives a run is decided by an flock, not by a pid (which a containerised runner's
pid namespace makes meaningless on the host)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runner.errors import InputError
from runner.host.runlock import driving, is_driven
from runner.records.record import RunResult
from runner.views.status import run_state

HOLD = ("import sys, time; from pathlib import Path; from runner.host.runlock import driving\n"
        "with driving(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(60)\n")


def test_a_live_holder_drives_the_run_and_its_death_releases_it(tmp_path: Path) -> None:
    assert not is_driven(tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        assert is_driven(tmp_path)
        with pytest.raises(InputError, match="still running"), driving(tmp_path):
            pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert not is_driven(tmp_path)
    with driving(tmp_path):
        assert is_driven(tmp_path)
    assert not is_driven(tmp_path)


def test_the_lock_not_the_record_says_whether_a_run_is_running(tmp_path: Path) -> None:
    result = RunResult(run_id="r", phase="p", base_sha="0" * 40, target="t", run_dir=tmp_path,
                       outcomes={}, started=time.time())
    assert run_state(result) == "interrupted"          # recorded running, nobody holds it
    with driving(tmp_path):
        assert run_state(result) == "running"
        result.state = "interrupted"                   # a resume that has not written yet
        assert run_state(result) == "running"
