"""The supervisor: runner's own first process in a sandbox, through which the lead runs its
commands there (one write on a channel, not an engine exec each), as the worker, with no
capabilities, reporting exit codes and output in frames a worker cannot forge.

inside.py is the program (it runs in the sandbox and imports nothing of runner's);
channel.py is the lead's end of it, over any byte stream a backend gives (Docker's attach).
"""

from __future__ import annotations

from pathlib import Path

from runner.sandbox.spec import SUPERVISOR_PROGRAM
from runner.sandbox.supervisor.channel import Channel, ChannelLost, NotStarted, Stream

PROGRAM = Path(__file__).with_name("inside.py")   # on this machine (SUPERVISOR_PROGRAM inside)
# Its uid: neither the worker's nor the forwarder's (KEEPER's), so a worker can neither signal
# nor trace it, nor read its channel through /proc.
SUPERVISOR_USER = "65533:65533"
# What it keeps to start commands as the worker; the container holds these alone.
CAPABILITIES = ("SETUID", "SETGID", "SETPCAP")
# What an image needs for it (program -> Debian package); an image without them has its
# commands run through engine execs instead.
WANTS = {"python3": "python3-minimal", "setpriv": "util-linux"}

__all__ = ["CAPABILITIES", "Channel", "ChannelLost", "NotStarted", "PROGRAM",
           "SUPERVISOR_USER", "Stream", "WANTS", "as_user", "can_supervise",
           "supervisor_command"]


def as_user(user: str) -> list[str]:
    """The prefix that runs a command as ``user`` ("uid:gid") with no groups, no
    capabilities left to gain (an empty bounding set, none inheritable or ambient) and
    no-new-privileges: every command in a supervised sandbox starts through it, the
    supervisor's and an engine exec's alike (the container's user holds CAPABILITIES)."""
    uid, gid = user.split(":")
    return ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups",
            "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]


def can_supervise(worker: str) -> bool:
    """Whether a supervisor stays out of reach of a worker running as ``worker``."""
    return worker.split(":")[0] != SUPERVISOR_USER.split(":")[0]


def supervisor_command(worker: str, beside: str | None = None) -> list[str]:
    """The container's command: the supervisor as SUPERVISOR_USER with CAPABILITIES ambient
    (the container starts as root with those alone), each command it runs as ``worker``;
    ``beside``, a shell command it starts once (the gateway's forwarder, which drops itself
    to its own user)."""
    uid, gid = SUPERVISOR_USER.split(":")
    caps = ",".join(f"+{cap.lower()}" for cap in CAPABILITIES)
    return ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups",
            f"--inh-caps={caps}", f"--ambient-caps={caps}", "--",
            "python3", "-I", "-S", SUPERVISOR_PROGRAM, *(["--beside", beside] if beside else []),
            "--", *as_user(worker)]
