"""The Docker engine goes away mid-run: runner stops with exit 3 and tells you to resume, the
run is marked interrupted rather than finished with failed tickets, and once the engine
answers again `runner resume` finishes it with nothing lost.

runner reaches the engine through a socket forwarder on a path of the test's own; closing the
forwarder is the engine going away, for runner, while the real engine goes on serving the
rest of the suite."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import docker

from tests.conftest import suite_containers
from tests.helpers import git, make_repo, runner_cli, write_phase

ENGINE = "/var/run/docker.sock"


class SocketForwarder:
    """Forwards every connection on ``path`` to the engine's socket, until closed."""

    def __init__(self, path: Path) -> None:
        self.listener = socket.socket(socket.AF_UNIX)
        self.listener.bind(str(path))
        self.listener.listen(64)
        self.open: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return                      # closed
            engine = socket.socket(socket.AF_UNIX)
            engine.connect(ENGINE)
            with self.lock:
                self.open += [client, engine]
            for a, b in ((client, engine), (engine, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        self.listener.close()
        with self.lock:
            for sock in self.open:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()


def test_engine_gone_mid_run_exits_3_and_resume_finishes(
        tmp_path: Path, engine: docker.DockerClient, worker_image: str) -> None:
    repo = make_repo(tmp_path / "repo")
    phase = write_phase(tmp_path / "p.yaml", {"name": "lost", "tickets": [
        {"id": "F", "agent": "script", "run": "echo f > f.txt"},
        {"id": "S", "agent": "script", "run": "echo part > part.txt\ngit add -A\n"
         "git commit -q -m 'S: part'\nsleep 6\necho done > done.txt"}]})
    forwarder = SocketForwarder(tmp_path / "engine.sock")
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path / 'engine.sock'}"}
    proc = subprocess.Popen([sys.executable, "-m", "runner", "run", str(phase), "--repo",
                             str(repo), "--no-preflight"], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 90
        while not git(repo, "for-each-ref", "refs/runner/*/F") or not any(
                c.attrs["Labels"].get("runner.ticket") == "S" and c.status == "running"
                for c in suite_containers(engine)):
            assert time.monotonic() < deadline and proc.poll() is None, "S never started"
            time.sleep(0.2)
        time.sleep(1.5)                              # S has committed its part
        forwarder.close()
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
        forwarder.close()
    assert proc.returncode == 3, out + err
    assert "Docker engine stopped answering" in err and "runner resume" in err
    assert "Traceback" not in err
    [run_dir] = (repo / ".git" / "runner").iterdir()
    record = json.loads((run_dir / "run.json").read_text())
    assert record["state"] == "interrupted"
    assert record["outcomes"]["F"]["status"] == "integrated"
    assert "S" not in record["outcomes"] or record["outcomes"]["S"]["interrupted"]

    resumed = runner_cli("resume", run_dir.name, "--repo", str(repo))  # the engine is back
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    target = json.loads((run_dir / "run.json").read_text())["target"]
    assert git(repo, "show", f"{target}:f.txt") == "f"
    assert git(repo, "show", f"{target}:done.txt") == "done"
    # What S had committed before the engine went was salvaged, not lost.
    assert git(repo, "show", f"refs/runner/{run_dir.name}/attempts/S/interrupted:part.txt") \
        == "part"
