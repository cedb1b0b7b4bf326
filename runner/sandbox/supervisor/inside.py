"""A sandbox's first process: runs the lead's commands as the worker and reports their
output and exit codes over the container's stdin and stdout, which only the lead holds.

Runs inside the sandbox under Debian's python3-minimal (`python3 -I -S`), so it uses the
interpreter's builtins and a few core modules alone, and imports nothing of runner's. It
runs as a uid that is not the worker's, with SETUID, SETGID and SETPCAP alone, which the
prefix it is given (setpriv) drops for every command it starts.

    inside.py [--beside COMMAND] -- PREFIX...

Requests, one a line: base64 of NUL-separated fields: id, working directory, argc, the
argv, then NAME=VALUE pairs. argc 0 is a ping, answered at once. The base64 keeps every
request clear of the engine's detach keys (control bytes).
Frames out: kind (1 byte), id, size (big-endian unsigned ints), then size bytes.
    o, e   the command's stdout and stderr, as they come
    x      its exit code, in decimal; nothing comes for that id after it
    f      a fault: id 0, the request could not be read (the lead closes the channel);
           otherwise the command could not start (nothing ran)
"""

import binascii
import os
import select
import signal
import struct
import sys
import time

FRAME = struct.Struct(">cII")
CHUNK = 65536
DRAIN = 1.0        # seconds a command's pipes are read after it exits (a child holding them)
OOM_FIRST = b"1000"   # a command's oom_score_adj: the kernel kills the worker before us


class Command:
    def __init__(self, ident, pid, out, err):
        self.ident, self.pid = ident, pid
        self.pipes = {out: b"o", err: b"e"}
        self.code = None
        self.drain_until = None


def frame(kind, ident, data=b""):
    view = memoryview(FRAME.pack(kind, ident, len(data)) + data)
    while view:
        view = view[os.write(1, view):]


def spawn(argv, cwd, env):
    """Start argv with its stdout and stderr on new pipes; stdin is /dev/null."""
    fds = [*os.pipe(), *os.pipe(), os.open("/dev/null", os.O_RDONLY)]
    out_r, out_w, err_r, err_w, null = fds
    try:
        pid = os.fork()
    except OSError:
        for fd in fds:
            os.close(fd)
        raise
    if pid == 0:      # the child: nothing of ours but its three streams survives exec
        try:
            os.dup2(null, 0)
            os.dup2(out_w, 1)
            os.dup2(err_w, 2)
            try:
                with open("/proc/self/oom_score_adj", "wb") as adj:
                    adj.write(OOM_FIRST)
            except OSError:
                pass
            os.chdir(cwd)
            os.execvpe(argv[0], argv, env)
        except BaseException as e:
            os.write(2, f"runner: cannot start a command in {cwd}: {e}\n".encode())
        os._exit(127)
    for fd in (null, out_w, err_w):
        os.close(fd)
    return pid, out_r, err_r


def home_of(uid):
    try:
        with open("/etc/passwd", "rb") as passwd:
            for line in passwd:
                fields = line.rstrip(b"\n").split(b":")
                if len(fields) > 5 and fields[2] == uid.encode():
                    return fields[5].decode("utf-8", "replace") or "/"
    except OSError:
        pass
    return "/"


def parse(line):
    fields = binascii.a2b_base64(line).split(b"\0")
    ident, cwd, argc = int(fields[0]), fields[1].decode(), int(fields[2])
    argv = [f.decode("utf-8", "surrogateescape") for f in fields[3:3 + argc]]
    pairs = [f.decode("utf-8", "surrogateescape") for f in fields[3 + argc:] if f]
    env = dict(pair.split("=", 1) for pair in pairs)
    return ident, cwd, argv, env


def main(args):
    beside = None
    if args[:1] == ["--beside"]:
        beside, args = args[1], args[2:]
    if args[:1] != ["--"]:
        sys.exit("usage: inside.py [--beside COMMAND] -- PREFIX...")
    prefix = args[1:]
    worker_uid = next((a.split("=", 1)[1] for a in prefix if a.startswith("--reuid=")), "")
    # HOME as an engine exec as the worker would have it: the container's own (its image's
    # or its spec's) if it sets one, else the worker's from /etc/passwd. The engine gave this
    # process root's when the container sets none.
    base_env = dict(os.environ)
    if base_env.get("HOME", home_of("0")) == home_of("0"):
        base_env["HOME"] = home_of(worker_uid)

    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    if beside:
        spawn(["/bin/sh", "-c", beside], "/", dict(base_env))

    commands = {}        # pid -> Command
    by_fd = {}           # pipe -> Command
    pending = b""
    poller = select.poll()     # poll, not select: no limit on the fds' numbers
    poller.register(wake_r, select.POLLIN)
    poller.register(0, select.POLLIN)
    while True:
        now = time.monotonic()
        due = [c.drain_until for c in commands.values() if c.drain_until is not None]
        wait = max(0, int((min(due) - now) * 1000) + 1) if due else None
        try:
            ready = [fd for fd, _ in poller.poll(wait)]
        except InterruptedError:
            ready = []
        for fd in ready:
            if fd == wake_r:
                os.read(wake_r, 512)
            elif fd == 0:
                data = os.read(0, CHUNK)
                if not data:      # the lead let go: keep reaping, take no more requests
                    poller.unregister(0)
                    continue
                pending += data
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    try:
                        ident, cwd, argv, env = parse(line)
                    except (ValueError, IndexError, binascii.Error):
                        frame(b"f", 0, b"unreadable request")
                        continue
                    if not argv:
                        frame(b"x", ident, b"0")
                        continue
                    try:
                        pid, out, err = spawn(prefix + argv, cwd, {**base_env, **env})
                    except OSError as e:      # no pid or memory left for it
                        frame(b"f", ident, str(e).encode())
                        continue
                    command = Command(ident, pid, out, err)
                    commands[pid] = command
                    by_fd[out] = by_fd[err] = command
                    poller.register(out, select.POLLIN)
                    poller.register(err, select.POLLIN)
            else:
                command = by_fd[fd]
                data = os.read(fd, CHUNK)
                if data:
                    frame(command.pipes[fd], command.ident, data)
                else:
                    _close(fd, command, by_fd, poller)
        _reap(commands)
        now = time.monotonic()
        for pid, command in list(commands.items()):
            if command.code is None:
                continue
            if command.drain_until is None:
                command.drain_until = now + DRAIN
            if not command.pipes or now >= command.drain_until:
                for fd in list(command.pipes):
                    _close(fd, command, by_fd, poller)
                frame(b"x", command.ident, str(command.code).encode())
                del commands[pid]


def _close(fd, command, by_fd, poller):
    poller.unregister(fd)
    os.close(fd)
    del command.pipes[fd]
    del by_fd[fd]


def _reap(commands):
    """Wait for every child that ended: our commands, and what was orphaned to us (pid 1)."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        if pid in commands:
            commands[pid].code = (128 + os.WTERMSIG(status) if os.WIFSIGNALED(status)
                                  else os.WEXITSTATUS(status))


if __name__ == "__main__":
    main(sys.argv[1:])
