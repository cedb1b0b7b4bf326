"""What a sandbox is made of: the paths a worker sees, its checkout, its limits, the whole
SandboxSpec; the exit codes and timings every backend shares."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runner.host import RunObjects


WORKSPACE = "/workspace"


GRADLE_HOME = "/gradle-home"


GRADLE_RO_CACHE = "/gradle-ro-cache"


RUN_OBJECTS = "/runner/objects"  # the run's object store, read-only (clone alternates)


CLAUDE_DIR = "/runner/claude"


SUPERVISOR_DIR = "/runner/supervisor"


SUPERVISOR_PROGRAM = f"{SUPERVISOR_DIR}/inside.py"   # runner's supervisor, read-only (supervisor/)


CLAUDE_BINARY = f"{CLAUDE_DIR}/claude"    # Claude Code, read-only, for claude-code tickets


GATEWAY_DIR = "/runner/gateway"  # the directory of the worker's gateway socket, read-only
# The gateway's relay's own directory where the engine cannot reach this machine's socket
# (relay/script.py): its user's alone, which the worker cannot enter.
RELAY_DIR = "/relay"


GATEWAY_PORT = 3128              # where the forwarder serves the gateway on the worker's loopback


TIMEOUT_EXIT = 124                # what `timeout` returns when it stopped the command


KILL_GRACE = 10        # seconds between `timeout`'s TERM and its KILL


STOPPED_EXIT = 137     # SIGKILL: the watchdog, the OOM killer, or a worker killing its init


WATCHDOG_SLACK = 30    # seconds after that before the host stops the whole sandbox


# Where a provider's own scratch checkouts are (probes, phase checks): never salvaged.
SCRATCH_PLACES = ("selftest", "checks")


# Scripts and checks run like CI steps: stop at the first failing command, also in pipelines.
STRICT_BASH = ("bash", "--noprofile", "--norc", "-eo", "pipefail", "-c")


@dataclass(frozen=True)
class Mount:
    source: Path
    target: str
    read_only: bool = False


@dataclass(frozen=True)
class Checkout:
    """The clone a sandbox works in, which its provider makes and keeps: ``start`` checked
    out on ``branch``, borrowing only what ``history`` holds (base's history and the run's
    integrated work). ``place`` and ``name`` say which one, within the run: a ticket
    ("", "T1"), a rerun ("reruns/1", "T1"), a probe ("selftest", "_probe1"). A ``start`` of
    "" is one not known yet: a sandbox made ahead for a ticket whose dependencies run."""

    name: str
    branch: str
    start: str
    history: RunObjects
    place: str = ""
    fresh: bool = True             # False: the one an earlier sandbox left (salvage)
    # What its private home (GRADLE_HOME) starts with: (file name, text), e.g. Gradle's
    # gradle.properties and cargo's config.toml pointing them at the gateway.
    home_files: tuple[tuple[str, str], ...] = ()
    # And files of this machine copied there: (path in the home, the file), e.g. a Gradle
    # wrapper's distribution from the dependency cache.
    home_copies: tuple[tuple[str, Path], ...] = ()


@dataclass(frozen=True)
class Durable:
    """A checkout that must outlive its sandbox, on an engine whose checkouts would otherwise
    go with it (a Pod's emptyDir): kept on a volume of ``storage_class`` (None: the engine's
    default). Docker's checkouts outlive their containers already."""

    storage_class: str | None = None


@dataclass(frozen=True)
class Limits:
    cpus: float
    memory: str
    pids: int
    disk: int | None = None    # bytes the writable mounts may grow by (None: not watched)


@dataclass(frozen=True)
class SandboxSpec:
    name: str
    image: str
    env: Mapping[str, str]
    labels: Mapping[str, str]
    limits: Limits
    checkout: Checkout | None = None   # None: a sandbox with no workspace of its own
    shared_cache: Path | None = None   # a read-only Gradle dependency cache (GRADLE_RO_CACHE)
    files: tuple[Mount, ...] = ()      # read-only files carried in (the Claude Code binary)
    network: str = "none"
    user: str = "0:0"          # uid:gid the worker runs as (the host user's)
    workdir: str = WORKSPACE
    # The host path of the worker's gateway socket (None: no way out). The backend carries it
    # into the sandbox and serves it on 127.0.0.1:GATEWAY_PORT there; the socket's directory
    # holds nothing else.
    gateway: Path | None = None
    runtime: str | None = None     # the engine's runtime for it (runsc, a RuntimeClass)
    durable: Durable | None = None  # None: its checkout kept as the engine keeps them
