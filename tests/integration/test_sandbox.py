"""A worker container, started the way real workers are, seen from inside and from Docker."""

from __future__ import annotations

import os
import secrets
from dataclasses import replace
from pathlib import Path

import docker
import pytest

from runner.host.gitops import open_host_repo
from runner.host.objectstore import STORE, RunObjects
from runner.phase.load import load_phase
from runner.records.events import EventCollector
from runner.sandbox import END_MARK, START_MARK, read_output
from runner.sandbox.docker import sandbox as docker_sandbox
from runner.sandbox.docker.local import DockerSandboxes
from runner.sandbox.images import RECIPE_LABEL
from runner.worker.context import RunContext
from runner.worker.lifecycle import sandbox_spec
from tests.helpers import git, make_repo, write_phase

PROBE = r"""
echo "cap=$(awk '/^CapEff/ {print $2}' /proc/self/status)"
echo "nnp=$(awk '/^NoNewPrivs/ {print $2}' /proc/self/status)"
echo "net=$(ls /sys/class/net | tr '\n' ,)"
echo "uid=$(id -u):$(id -g)"
echo "pwd=$(pwd)"
echo "branch=$(git rev-parse --abbrev-ref HEAD)"
echo "status=$(git status --porcelain | wc -l)"
touch /etc/probe 2>/dev/null && echo "rootfs=writable" || echo "rootfs=read-only"
obj=$(find /runner/objects -type f | head -1)
chmod u+w "$obj" 2>/dev/null && echo "objects=changeable" || echo "objects=read-only"
test -e /var/run/docker.sock && echo "socket=present" || echo "socket=absent"
echo "secret=${ANTHROPIC_API_KEY:-none}"
echo "gradle=$GRADLE_USER_HOME"
touch "$GRADLE_USER_HOME/w" && echo "gradle_home=writable"
echo "alternates=$(cat .git/objects/info/alternates)"
"""


@pytest.fixture
def worker(tmp_path: Path, engine: docker.DockerClient, worker_image: str,
           monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-host-secret")
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    host = open_host_repo(repo)
    phase = load_phase(write_phase(tmp_path / "p.yaml", {
        "name": "probe", "resources": {"cpus": 0.5, "memory": "256m", "pids": 64},
        "tickets": [{"id": "X", "agent": "script", "run": "true"}]}))
    run_id, head = f"test-{secrets.token_hex(3)}", git(repo, "rev-parse", "HEAD")
    objects = RunObjects(host, path=tmp_path / "run" / STORE, run_id=run_id, base=head)
    ctx = RunContext(run_id=run_id, phase=phase, host=host, root=tmp_path / "run",
                     objects=objects, provider=DockerSandboxes(engine, root=tmp_path / "run"),
                     sink=EventCollector())
    with ctx.provider.open(sandbox_spec(ctx, "X", ctx.checkout("X", head))) as sandbox:
        workspace = sandbox.workspace
        yield ctx, workspace, sandbox, repo
    ctx.provider.settle()


def test_inside_the_worker(worker) -> None:
    ctx, _, sandbox, _ = worker
    result = sandbox.exec(["bash", "-c", PROBE], timeout=60)
    assert result.exit_code == 0, result.output
    seen = dict(line.split("=", 1) for line in result.output.splitlines() if "=" in line)
    assert seen["cap"] == "0000000000000000"
    assert seen["nnp"] == "1"
    assert seen["net"] == "lo,"
    assert seen["uid"] == f"{os.getuid()}:{os.getgid()}"
    assert seen["pwd"] == "/workspace"
    assert seen["branch"] == ctx.branch("X")
    assert seen["status"] == "0"
    assert seen["rootfs"] == "read-only"
    assert seen["objects"] == "read-only"
    assert seen["socket"] == "absent"
    assert seen["secret"] == "none"
    assert seen["gradle"] == "/gradle-home"
    assert seen["gradle_home"] == "writable"
    assert seen["alternates"] == "/runner/objects"


def test_container_settings(worker, engine: docker.DockerClient) -> None:
    ctx, _, sandbox, _ = worker
    attrs = engine.containers.get(sandbox.name).attrs
    host = attrs["HostConfig"]
    labels = dict(attrs["Config"]["Labels"])
    labels.pop(RECIPE_LABEL, None)       # the image's own, inherited
    assert labels == {"runner.run": ctx.run_id, "runner.ticket": "X",
                      "runner.run-dir": str(ctx.root), "runner.supervised": "1"}
    # Root with the supervisor's three capabilities alone (it hands them to its own uid and
    # drops them for each command), its channel logged nowhere.
    assert host["CapDrop"] == ["ALL"]
    assert sorted(host["CapAdd"]) == ["SETGID", "SETPCAP", "SETUID"]
    assert attrs["Config"]["User"] == "0:0" and attrs["Config"]["OpenStdin"] is True
    assert host["LogConfig"]["Type"] == "none" and not host["Init"]
    assert host["SecurityOpt"] == ["no-new-privileges:true"]
    assert host["ReadonlyRootfs"] is True
    assert host["NetworkMode"] == "none"
    assert host["PidsLimit"] == 64
    assert host["Memory"] == 256 * 2**20
    assert host["NanoCpus"] == 500_000_000
    assert not any("docker.sock" in m["Source"] for m in attrs["Mounts"])
    objects = [m for m in attrs["Mounts"] if m["Destination"] == "/runner/objects"]
    assert objects and objects[0]["RW"] is False


def test_clone_shares_no_inode_with_the_host(worker) -> None:
    _, workspace, _, repo = worker
    host_inodes = {p.stat().st_ino for p in (repo / ".git/objects").rglob("*") if p.is_file()}
    for path in (workspace.clone / ".git").rglob("*"):
        if path.is_file():
            assert path.stat().st_nlink == 1, path
            assert path.stat().st_ino not in host_inodes, path


def test_exec_timeout_is_enforced(worker) -> None:
    _, _, sandbox, _ = worker
    result = sandbox.exec(["sleep", "30"], timeout=1)
    assert result.timed_out and not result.ok


def test_the_host_watchdog_ends_what_timeout_cannot(worker,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker that stops `timeout` itself (SIGSTOP to its parent) keeps running past its
    time: only the host's watchdog, killing the container, ends the command. (Its grace and
    slack, 40 s in runs, are shortened here; the path is the same.)"""
    monkeypatch.setattr(docker_sandbox, "KILL_GRACE", 1)
    monkeypatch.setattr(docker_sandbox, "WATCHDOG_SLACK", 1)
    _, _, sandbox, _ = worker
    result = sandbox.exec(["bash", "-c", "echo started; kill -STOP $PPID; sleep 600"],
                          timeout=1)
    assert result.timed_out and result.exit_code == docker_sandbox.STOPPED_EXIT
    assert "started" in result.output
    after = sandbox.exec(["bash", "-c", "pgrep -f 'sleep 60[0]' || echo none"], timeout=30)
    assert after.output.strip() == "none", after  # the container was killed and started again
    assert sandbox.restarts == 0                  # our own kill: no "stopped from outside" retry


def test_output_streams_line_by_line(worker) -> None:
    _, _, sandbox, _ = worker
    lines: list[str] = []
    result = sandbox.exec(["bash", "-c", "echo one; echo two >&2; printf three"], timeout=30,
                          on_output=lines.append)
    assert result.ok
    assert sorted(lines) == ["one", "three", "two"]


def test_a_reset_ends_every_worker_process_and_keeps_the_container(worker) -> None:
    """What a worker leaves running — detached with setsid, double-forked — is killed at
    once; the container, its /tmp and the keeper the worker cannot signal stay."""
    _, _, sandbox, _ = worker
    # A worker killing everything it may (its own command too) leaves the container up.
    sandbox.exec(["bash", "-c", "kill -KILL 1; kill -KILL -1"], timeout=30)
    started = sandbox.exec(["bash", "-c", "echo kept > /tmp/note; "
                            "setsid sleep 301 </dev/null >/dev/null 2>&1 & "
                            "( ( sleep 302 </dev/null >/dev/null 2>&1 & ) & )"], timeout=30)
    assert started.ok, started
    alive = sandbox.exec(["bash", "-c", "pgrep -f 'sleep 30[12]' | wc -l"], timeout=30)
    assert alive.output.strip() == "2", alive
    sandbox.reset()
    after = sandbox.exec(["bash", "-c", "pgrep -f 'sleep 30[12]' | wc -l; cat /tmp/note"],
                         timeout=30)
    assert after.output.split() == ["0", "kept"], after
    assert sandbox.restarts == 0


def test_a_read_comes_whole_or_runs_again(worker) -> None:
    """read_output strips its marks, keeps the exit code, and runs a read whose end mark did
    not arrive again (here: its shell killed before the mark), then fails saying so."""
    _, _, sandbox, _ = worker
    read = read_output(sandbox, ["sh", "-c", "echo one; echo two >&2; exit 3"], timeout=60)
    assert read.exit_code == 3 and END_MARK not in read.output
    assert START_MARK not in read.output
    assert sorted(read.output.split()) == ["one", "two"]
    # Marks in what the command prints (a worker's file in a diff, say) are its bytes.
    forged = f"a\n{END_MARK}\nb\n{START_MARK}\nc\n"
    assert read_output(sandbox, ["printf", "%s", forged], timeout=60).output == forged
    lost = read_output(sandbox, ["sh", "-c", "echo x >> /tmp/tries; kill -9 $PPID"],
                       timeout=60)
    assert not lost.ok and "did not arrive whole in 3 tries" in lost.output
    assert sandbox.exec(["cat", "/tmp/tries"], timeout=60).output.split() == ["x"] * 3


def test_a_checkout_made_ahead_is_the_one_its_sandbox_opens(tmp_path: Path, worker) -> None:
    ctx, _, _, repo = worker
    head = git(repo, "rev-parse", "HEAD")
    checkout = ctx.checkout("Y", head)
    ctx.provider.prepare(sandbox_spec(ctx, "Y", checkout), started=False)
    clone = tmp_path / "run" / "workspaces" / "Y"
    made = clone.stat().st_ino
    (clone / "made-ahead").write_text("")      # the runner's, before the worker is there
    with ctx.provider.open(sandbox_spec(ctx, "Y", checkout)) as sandbox:
        assert sandbox.exec(["test", "-e", "made-ahead"], timeout=60).exit_code == 0
    assert clone.stat().st_ino == made
    # Made ahead for one open: a second open of the same checkout makes its own (refused
    # here: the first is still there).
    with pytest.raises(FileExistsError):
        with ctx.provider.open(sandbox_spec(ctx, "Y", checkout)):
            pass


def _running(engine: docker.DockerClient, name: str) -> list[str]:
    return [c.status for c in engine.containers.list(all=True, filters={"name": f"^{name}$"})]


def test_a_sandbox_made_ahead_is_started_and_runs_nothing_until_opened(
        worker, engine: docker.DockerClient) -> None:
    ctx, _, _, repo = worker
    head = git(repo, "rev-parse", "HEAD")
    spec = sandbox_spec(ctx, "Y", ctx.checkout("Y", head))
    ctx.provider.prepare(spec)
    assert _running(engine, spec.name) == ["running"]
    top = engine.containers.get(spec.name).top(ps_args="-o pid,args")["Processes"]
    assert [args.split()[:4] for _, args in top] == [
        ["python3", "-I", "-S", "/runner/supervisor/inside.py"]], top      # it alone
    with ctx.provider.open(spec) as sandbox:
        assert sandbox.container.name == spec.name
        assert sandbox.exec(["git", "rev-parse", "HEAD"], timeout=60).output.strip() == head
    ctx.provider.settle()          # its removal went on meanwhile; settle waits for it
    assert _running(engine, spec.name) == []


def test_what_was_made_ahead_for_another_spec_is_not_used(
        worker, engine: docker.DockerClient) -> None:
    ctx, _, _, repo = worker
    head = git(repo, "rev-parse", "HEAD")
    checkout = ctx.checkout("Y", head)
    ahead = sandbox_spec(ctx, "Y", checkout)
    ctx.provider.prepare(ahead)
    first = engine.containers.get(ahead.name).id
    other = replace(ahead, env={**ahead.env, "EXTRA": "1"})
    with ctx.provider.open(other) as sandbox:      # its checkout is the one made ahead
        assert sandbox.container.id != first
        assert sandbox.exec(["sh", "-c", "echo $EXTRA"], timeout=60).output.strip() == "1"
    ctx.provider.settle()
    assert _running(engine, ahead.name) == []
    # Never opened: settle removes it, and discard takes its checkout too.
    ctx.provider.prepare(sandbox_spec(ctx, "Z", ctx.checkout("Z", head)))
    ctx.provider.discard("", "Z")
    assert _running(engine, sandbox_spec(ctx, "Z", checkout).name) == []
    assert not (ctx.root / "workspaces" / "Z").exists()


def test_a_sandbox_made_before_its_start_is_known_checks_it_out_when_opened(
        worker, engine: docker.DockerClient) -> None:
    """A dependent's sandbox is made while its dependency runs: started, its clone empty;
    its open() checks out the start it got (here a commit made after it was started)."""
    ctx, _, _, repo = worker
    ahead = sandbox_spec(ctx, "Y", ctx.checkout("Y", ""))
    ctx.provider.prepare(ahead)
    made = engine.containers.get(ahead.name)
    assert made.status == "running"
    clone = ctx.root / "workspaces" / "Y"
    assert list(clone.iterdir()) == []
    (repo / "later.txt").write_text("later\n")
    git(repo, "add", "later.txt")
    git(repo, "commit", "-qm", "later")
    later = git(repo, "rev-parse", "HEAD")
    git(repo, "update-ref", ctx.objects.integrated_ref, later)    # as integration would
    with ctx.provider.open(sandbox_spec(ctx, "Y", ctx.checkout("Y", later))) as sandbox:
        assert sandbox.container.id == made.id
        assert sandbox.workspace.start == later
        seen = sandbox.exec(["sh", "-c", "git rev-parse HEAD; cat later.txt"], timeout=60)
        assert seen.output.split() == [later, "later"], seen
    # One made ahead and never opened (its ticket skipped): the run's settle takes it all.
    skipped = sandbox_spec(ctx, "Z", ctx.checkout("Z", ""))
    ctx.provider.prepare(skipped)
    ctx.provider.settle()
    assert _running(engine, ahead.name) == _running(engine, skipped.name) == []
    assert not (ctx.root / "workspaces" / "Z").exists()


# The supervisor (sandbox/supervisor/): the lead's commands through it, and where it cannot
# be, through engine execs, never with the container's capabilities.

CAPS = "grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb)' /proc/self/status | tr -s '\\t' ' '"
NO_CAPS = [f"Cap{s}: 0000000000000000" for s in ("Inh", "Prm", "Eff", "Bnd", "Amb")]


def test_commands_go_through_the_supervisor_as_the_worker_with_nothing(
        worker, engine: docker.DockerClient) -> None:
    ctx, _, sandbox, _ = worker
    assert sandbox.supervised and sandbox.commands_via == "the supervisor"
    first = sandbox.exec(["sh", "-c", "awk '/^Uid/ {print $2}' /proc/1/status; id -u; id -g"],
                         timeout=30)
    assert first.output.split() == ["65533", *ctx.user.split(":")], first
    assert sandbox.exec(["sh", "-c", CAPS], timeout=30).output.splitlines() == NO_CAPS
    # Its environment is the container's, as an exec's would be: HOME the spec's (/tmp).
    assert sandbox.exec(["sh", "-c", 'echo "$HOME"'], timeout=30).output == "/tmp\n"
    # The container's user holds the supervisor's capabilities: an engine exec as it, not
    # through runner's drop, would have them (root here, as a root host user's worker is).
    raw = engine.api.exec_create(sandbox.container.id, ["sh", "-c", CAPS], user="0:0")
    assert engine.api.exec_start(raw).decode().splitlines() != NO_CAPS
    # Let go of the channel (as a run that ends with --keep does): engine execs from then
    # on, each dropped as the supervisor drops its commands.
    sandbox.detach()
    assert sandbox.commands_via == "engine execs"
    assert sandbox.exec(["sh", "-c", CAPS], timeout=30).output.splitlines() == NO_CAPS
    assert sandbox.exec(["id", "-u"], timeout=30).output.strip() == ctx.user.split(":")[0]


def test_commands_at_once_each_get_their_own_output_and_exit_code(worker) -> None:
    from concurrent.futures import ThreadPoolExecutor

    _, _, sandbox, _ = worker

    def one(n: int) -> tuple[int, str]:
        result = sandbox.exec(["sh", "-c", f"for i in 1 2 3; do echo {n}-$i; sleep 0.1; done; "
                               f"echo err{n} >&2; exit {n}"], timeout=30)
        return result.exit_code, result.output

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(8)))
    for n, (code, output) in enumerate(results):
        assert code == n and sorted(output.split()) == sorted(
            [f"{n}-1", f"{n}-2", f"{n}-3", f"err{n}"]), (n, code, output)


def test_output_left_running_holds_up_no_later_command(worker) -> None:
    """A command whose children keep its streams and flood them returns (its pipes drained a
    moment after it exits); the next command answers, its own output alone."""
    _, _, sandbox, _ = worker
    flood = sandbox.exec(["sh", "-c", "(yes flood | head -c 64m) & (yes FLOOD >&2) & exit 4"],
                         timeout=60)
    assert flood.exit_code == 4
    after = sandbox.exec(["echo", "next"], timeout=30)
    assert after.ok and after.output == "next\n", after.output[-200:]


def test_a_restart_from_outside_attaches_again(worker, engine: docker.DockerClient) -> None:
    _, _, sandbox, _ = worker
    engine.containers.get(sandbox.name).restart(timeout=0)
    result = sandbox.exec(["echo", "again"], timeout=30)
    assert result.output == "again\n" and sandbox.commands_via == "the supervisor"
    # Killed: started again by the next command, attached before it starts.
    engine.containers.get(sandbox.name).kill()
    assert sandbox.exec(["echo", "once more"], timeout=30).output == "once more\n"
    assert sandbox.commands_via == "the supervisor" and sandbox.restarts == 1


def test_an_image_that_cannot_run_the_supervisor_gets_engine_execs(
        worker, engine: docker.DockerClient, worker_image: str) -> None:
    import io

    ctx, _, _, repo = worker
    tag = f"runner-test-nopython:{secrets.token_hex(3)}"
    dockerfile = f"FROM {worker_image}\nRUN rm -f /usr/bin/python3*\n"
    engine.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True)
    try:
        head = git(repo, "rev-parse", "HEAD")
        spec = replace(sandbox_spec(ctx, "Y", ctx.checkout("Y", head)), image=tag)
        with ctx.provider.open(spec) as sandbox:
            assert not sandbox.supervised and sandbox.commands_via == "engine execs"
            assert sandbox.exec(["sh", "-c", CAPS], timeout=30).output.splitlines() == NO_CAPS
        ctx.provider.settle()
    finally:
        engine.images.remove(tag, force=True)
