"""The isolation self-test: two probe workers, started exactly as real workers are (same
workspace code, same spec, same provider), each reporting from inside what it can see.

Facts are gathered in the containers; judgement happens here, on the host. `runner doctor`
shows the table; `runner run` runs the same test before any ticket starts.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from runner.errors import EnvironmentProblem
from runner.host import discard_tree, git_out
from runner.isolation.secretenv import MIN_SECRET_LENGTH, GivenEnv, refused_env
from runner.sandbox import (CLAUDE_BINARY, CLAUDE_DIR, GATEWAY_DIR, GATEWAY_PORT, GRADLE_HOME,
                            GRADLE_RO_CACHE, RELAY_DIR, RUN_OBJECTS, SUPERVISOR_PROGRAM,
                            WORKSPACE, Checkout, Sandbox, read_output)
from runner.worker import RunContext, open_sandbox, sandbox_spec

PROBES = ("_probe1", "_probe2")
TOGETHER_TIMEOUT = 120   # seconds one probe waits for the other at each step
# Mount points every Docker container has (docker-init is the init binary, read-only),
# besides the ones runner gives a worker.
STANDARD_MOUNTS = ("/", "/proc", "/dev", "/sys", "/etc/resolv.conf", "/etc/hostname",
                   "/etc/hosts", "/tmp", "/sbin/docker-init", "/usr/sbin/docker-init")
# CLAUDE_DIR: the binary's directory, a Pod's copy or a remote engine's volume; RELAY_DIR:
# the gateway's relay's own, beside a remote engine's keeper (the worker cannot enter it).
WORKER_MOUNTS = (WORKSPACE, GRADLE_HOME, RUN_OBJECTS, GRADLE_RO_CACHE, GATEWAY_DIR,
                 CLAUDE_BINARY, CLAUDE_DIR, RELAY_DIR, SUPERVISOR_PROGRAM)
# A name that cannot be in any egress list: a CONNECT to it must be refused.
UNLISTED_HOST = "runner-selftest.invalid"
ENV_FACT = "env."   # one fact per variable: env.NAME=sha256 of its value

# Runs in the probe, before it looks for the other's markers, with: $1 = its own name, $2 = a
# host-only marker path, $3 = an object only the host repo has, $4 = the gateway's port ("":
# no gateway), $5 = a host no egress entry lists, $6 = the phase's network. Builtins wherever
# they do: each program started in a probe is a few milliseconds on every run's critical path.
FACTS = r"""
# The environment first, before this script sets any variable: one of the same name would be
# read instead of what the probe was given.
exec 3< <(env -0)
fact() { printf '%s=%s\n' "$1" "$2"; }
# Each variable's name and the sha256 of its value: the host judges, and no value leaves.
# The values go to files in the probe's own /tmp (printf is the shell's own) and one
# sha256sum hashes them all.
names=() i=0
while IFS= read -r -d '' var <&3; do
  names[i]=${var%%=*}; printf '%s' "${var#*=}" > "/tmp/.probe-env.$i"; i=$((i + 1))
done
exec 3<&-
while read -r hash file; do
  fact "env.${names[${file##*.}]}" "$hash"
done < <(sha256sum -- /tmp/.probe-env.*)
me=$1 host_marker=$2 host_object=$3 port=$4 unlisted=$5
uid="" gid="" cap_eff="" no_new_privs=""
writable() { if { : >> "$1"; } 2>/dev/null; then echo yes; else echo no; fi; }
# Its own markers first (the other probe looks for them after both have made theirs).
fact markers "$( [ "$(writable "/workspace/.probe-$me")$(writable \
  "$GRADLE_USER_HOME/.probe-$me")" = yesyes ] && echo made || echo missing)"
fact pwd "$PWD"
{ IFS= read -r git_dir; IFS= read -r branch; } < <(git rev-parse --absolute-git-dir \
  --abbrev-ref HEAD 2>&1)
fact git_dir "$git_dir"
fact branch "$branch"
fact gradle_home "$GRADLE_USER_HOME"
fact gradle_writable "$(writable "$GRADLE_USER_HOME/.probe-write")"
fact host_marker "$(test -e "$host_marker" && echo visible || echo absent)"
sockets=""
for s in /var/run/docker.sock /run/docker.sock /run/containerd/containerd.sock; do
  test -e "$s" && sockets="$sockets$s "
done
fact sockets "$sockets"
fact docker_host "${DOCKER_HOST:-}"
net=(/sys/class/net/*)
fact net "${net[*]##*/}"
# An interface besides lo (a Pod's eth0, under a NetworkPolicy) when the phase wants no
# network ($6 = none): try what a Pod can most often reach, at once, 2 s each: the API
# server's Service, the name servers (not loopback ones: those are the Pod's own), the
# default route's gateway. A connection made, or refused, means traffic goes out.
tried=() reached=""
if [ "${net[*]##*/}" != lo ] && [ "$6" = none ]; then
  [ -n "${KUBERNETES_SERVICE_HOST:-}" ] && \
    tried+=("$KUBERNETES_SERVICE_HOST:${KUBERNETES_SERVICE_PORT:-443}")
  while read -r key value _; do
    [ "$key" = nameserver ] && [[ $value != 127.* && $value != ::1 ]] && tried+=("$value:53")
  done < /etc/resolv.conf
  while read -r _ dest gw _; do
    [ "$dest" = 00000000 ] && [ "$gw" != 00000000 ] && \
      tried+=("$((16#${gw:6:2})).$((16#${gw:4:2})).$((16#${gw:2:2})).$((16#${gw:0:2})):80")
  done < <(tail -n +2 /proc/net/route)
  for target in "${tried[@]}"; do
    ( said=$(LC_ALL=C timeout 2 bash -c 'exec 3<>"/dev/tcp/${1%:*}/${1##*:}"' _ "$target" \
        2>&1) || [[ $said == *refused* ]] ) && echo "$target" &
  done > /tmp/.probe-reached
  wait
  reached=$(tr '\n' ' ' < /tmp/.probe-reached)
fi
fact tried "${tried[*]}"
fact reached "$reached"
mounts=""
while read -r _ _ _ _ point _; do mounts="$mounts$point "; done < /proc/self/mountinfo
fact mounts "$mounts"
while read -r key first second _; do    # this shell's own: the worker's credentials
  case $key in
    Uid:) uid=$second ;; Gid:) gid=$second ;;     # real, effective, ...: the effective
    CapEff:) cap_eff=$first ;; NoNewPrivs:) no_new_privs=$first ;;
  esac
done < /proc/self/status
fact uid "$uid:$gid"
fact cap_eff "$cap_eff"
fact no_new_privs "$no_new_privs"
fact objects_writable "$(writable /runner/objects/.probe)"
fact host_object "$(git cat-file -e "$host_object" 2>/dev/null && echo readable || echo absent)"
fact rootfs_writable "$(writable /.probe)"
fact dns "$(timeout 5 getent hosts example.com >/dev/null 2>&1 && echo resolves || echo none)"
# The sandbox's first process (runner's supervisor, where it has one): whose it is, and what
# of it this worker can reach: signal it, read its environment, memory or channel (fd 0),
# list its files, write to its channel; and whether it can change its program.
while read -r key _ second _; do [ "$key" = Uid: ] && fact first_uid "$second"; done \
  < /proc/1/status
reach=""
kill -0 1 2>/dev/null && reach="$reach signal"
for f in environ mem fd/0; do { : < "/proc/1/$f"; } 2>/dev/null && reach="$reach read:$f"; done
{ : >> /proc/1/fd/0; } 2>/dev/null && reach="$reach write:fd/0"
fds=(/proc/1/fd/*)
[ -e "${fds[0]}" ] && reach="$reach list:fd"
fact first_reach "${reach# }"
fact supervisor_writable "$(writable {supervisor})"
""".replace("{supervisor}", SUPERVISOR_PROGRAM)

# With a gateway: does the forwarder answer, as this worker's own gateway, and refuse a host
# that no egress entry lists? HTTP/1.0: the gateway closes after its answer, so `cat` ends.
GATEWAY_FACTS = r"""
ask() {
  timeout 10 bash -c 'exec 3<>/dev/tcp/127.0.0.1/'"$1"' && printf "%b" "$2" >&3 && cat <&3' \
    _ "$1" "$2" 2>/dev/null | tr -d '\r'
}
fact socat "$(command -v socat >/dev/null && echo present || echo missing)"
answer="$(ask "$port" 'GET /_runner/whoami HTTP/1.0\r\n\r\n')"
fact gateway_status "$(printf '%s\n' "$answer" | head -n 1 | cut -d' ' -f2)"
fact gateway_caller "$(printf '%s\n' "$answer" | tail -n 1)"
refused="$(ask "$port" "CONNECT $unlisted:443 HTTP/1.0\r\nHost: $unlisted:443\r\n\r\n")"
fact unlisted_status "$(printf '%s\n' "$refused" | head -n 1 | cut -d' ' -f2)"
fact relay_dir "$(if [ ! -e {relay} ]; then echo absent; elif ls {relay} >/dev/null 2>&1 || \
  [ -w {relay} ]; then echo open; else echo closed; fi)"
""".replace("{relay}", RELAY_DIR)

# Runs in the probe once both have made their markers, with $1 = the other probe's name.
LOOK = r"""
seen() { if test -e "$1"; then echo visible; else echo absent; fi; }
printf 'other_marker=%s\n' "$(seen "/workspace/.probe-$1")"
printf 'other_gradle_marker=%s\n' "$(seen "$GRADLE_USER_HOME/.probe-$1")"
"""
@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str = ""     # what is wrong (empty when it passed)
    fix: str = ""        # what to do about it


@dataclass(frozen=True)
class Probed:
    """What one probe reported from inside, beside what runner gave it."""

    name: str
    seen: dict[str, str]
    given: GivenEnv
    key_files: list[str] | None = None   # its files holding the key (None: not looked)
    user: str = ""                       # the uid:gid its sandbox runs its commands as
    supervised: bool = False             # its first process is runner's supervisor


@dataclass(frozen=True)
class SelfTestResult:
    checks: tuple[Check, ...]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]


CheckoutMaker = Callable[[str], Checkout]


SELFTEST = "selftest"    # the place of the probes' checkouts


def run_selftest(ctx: RunContext, start: str,
                 checkout_for: CheckoutMaker | None = None) -> SelfTestResult:
    """Start two probes from ``start`` the way workers start, and check what they see.

    ``checkout_for`` gives each probe's checkout; the default is the real thing. Tests pass
    a broken one (two probes sharing a clone) to see the self-test catch it.
    """
    def real_checkout(probe: str) -> Checkout:
        return ctx.checkout(probe, start, place=SELFTEST)

    make = checkout_for or real_checkout
    if checkout_for is None:
        ctx.provider.discard(SELFTEST)   # an earlier self-test's (resume runs it again)
    marker_dir = ctx.root / "selftest-marker"
    discard_tree(marker_dir)
    marker_dir.mkdir(parents=True)
    host_marker = marker_dir / f".host-only-{secrets.token_hex(4)}"
    host_marker.write_text(f"only the host repo has this object: {secrets.token_hex(16)}\n")
    # An object in the host repo that base does not reach: workers must not read it.
    host_object = git_out(ctx.host.top, "hash-object", "-w", "--no-filters", "--",
                          str(host_marker))
    # Both probes run at once, as workers do: each leaves its markers, waits for the other,
    # looks, and waits again so neither container goes before the other has looked.
    together = threading.Barrier(len(PROBES), timeout=TOGETHER_TIMEOUT)
    open_now: set[str] = set()       # the probes whose sandboxes are up
    met: list[bool] = []             # both were up at one time

    def probe(name: str) -> Probed:
        try:
            checkout = make(name)
            spec = sandbox_spec(ctx, name, checkout)
            with open_sandbox(ctx, name, checkout) as sandbox, _up(open_now, name, met):
                facts = _facts(sandbox, name, str(host_marker), host_object,
                               gateway=ctx.gateway is not None, network=ctx.phase.network)
                together.wait()
                facts |= _seen(read_output(sandbox, ["bash", "-c", LOOK, "look",
                                                     _other(name)], timeout=60).output)
                together.wait()
                key = os.environ.get("ANTHROPIC_API_KEY", "")
                key_files = (sandbox.files_holding(key.encode())
                             if len(key) >= MIN_SECRET_LENGTH else [])
                user, supervised = sandbox.user, sandbox.supervised
            given = GivenEnv(spec=spec.env, image=spec.image,
                             image_env=ctx.provider.image_env(spec.image))
            return Probed(name, facts, given, key_files, user, supervised)
        except BaseException:
            together.abort()   # never leave the other probe waiting
            raise

    try:
        with ThreadPoolExecutor(max_workers=len(PROBES), thread_name_prefix="probe") as pool:
            futures = [pool.submit(probe, name) for name in PROBES]
            # The probe that failed first says why; the other only saw its barrier break.
            errors = [e for f in futures if (e := f.exception()) is not None]
            if errors:
                raise next((e for e in errors if not isinstance(e, threading.BrokenBarrierError)),
                           _waited(bool(met)))
            probed = [future.result() for future in futures]
        return SelfTestResult(tuple(_judge(ctx, probed)))
    finally:
        ctx.provider.discard(SELFTEST, later=True)   # probes' scratch: nothing to keep
        discard_tree(marker_dir)


def _other(probe: str) -> str:
    return PROBES[1] if probe == PROBES[0] else PROBES[0]


def _facts(sandbox: Sandbox, name: str, host_marker: str, host_object: str,
           gateway: bool, network: str) -> dict[str, str]:
    """What the probe ``name`` reports of itself, its own markers made first."""
    script = FACTS + (GATEWAY_FACTS if gateway else "")
    return _seen(read_output(sandbox, ["bash", "-c", script, "probe", name, host_marker,
                                       host_object, str(GATEWAY_PORT) if gateway else "",
                                       UNLISTED_HOST, network], timeout=120).output)


def _seen(output: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in output.splitlines() if "=" in line)


def _judge(ctx: RunContext, probed: list[Probed]) -> list[Check]:
    checks = []
    for name, test, fix in _RULES + (_GATEWAY_RULES if ctx.gateway else []):
        problems = [f"{probe.name}: {why}" for probe in probed if (why := test(ctx, probe))]
        checks.append(Check(name, not problems, "; ".join(problems), fix if problems else ""))
    return checks


Rule = Callable[[RunContext, Probed], str | None]


def _expect(key: str, want: Callable[[RunContext, str], str], what: str) -> Rule:
    def rule(ctx: RunContext, probe: Probed) -> str | None:
        got, expected = probe.seen.get(key, "<missing>"), want(ctx, probe.name)
        return None if got == expected else f"{what} is {got!r}, expected {expected!r}"
    return rule


def _mounts(ctx: RunContext, probe: Probed) -> str | None:
    allowed = STANDARD_MOUNTS + WORKER_MOUNTS
    extra = [m for m in probe.seen.get("mounts", "").split()
             if not (m in allowed or m.startswith(("/proc/", "/dev/", "/sys/")))]
    return f"unexpected mounts {', '.join(extra)}" if extra else None


def _secrets(ctx: RunContext, probe: Probed) -> str | None:
    env = {key.removeprefix(ENV_FACT): value for key, value in probe.seen.items()
           if key.startswith(ENV_FACT)}
    if not env:
        return "the probe reported no environment"
    refused = refused_env(env, probe.given, os.environ)
    return f"environment has {', '.join(refused)}" if refused else None


def _network(ctx: RunContext, probe: Probed) -> str | None:
    """Only lo; or, beside it, an interface through which nothing answers (a Pod under the
    run's NetworkPolicy, on a cluster that enforces it)."""
    if ctx.phase.network != "none":
        return None
    interfaces = probe.seen.get("net", "").split()
    if interfaces == ["lo"]:
        return None
    reached, tried = probe.seen.get("reached", "").split(), probe.seen.get("tried", "").split()
    if reached:
        return (f"network interfaces {interfaces}, and it reached {', '.join(reached)}: "
                "traffic goes out (on Kubernetes: the cluster does not enforce the run's "
                "NetworkPolicy)")
    return None if tried else (f"network interfaces {interfaces}, and nothing to try "
                               "reaching through them: isolation cannot be told")


def _relay_closed(ctx: RunContext, probe: Probed) -> str | None:
    seen = probe.seen.get("relay_dir", "<missing>")
    return None if seen in ("absent", "closed") else f"{RELAY_DIR} is {seen} to it"


def _fact_is(key: str, expected: str, what: str) -> Rule:
    return _expect(key, lambda ctx, probe: expected, what)


@contextmanager
def _up(open_now: set[str], name: str, met: list[bool]) -> Iterator[None]:
    open_now.add(name)          # set.add and len under the GIL: the count is whole
    if len(open_now) == len(PROBES):
        met.append(True)
    try:
        yield
    finally:
        open_now.discard(name)


def _waited(both_started: bool) -> EnvironmentProblem:
    """Why one probe gave up waiting for the other."""
    if both_started:
        return EnvironmentProblem(f"a self-test probe waited {TOGETHER_TIMEOUT}s for the other "
                                  "to finish a step: the engine is answering too slowly")
    return EnvironmentProblem(f"the self-test's two probes never ran at once (one waited "
                              f"{TOGETHER_TIMEOUT}s for the other): the engine must have room "
                              "for two workers side by side (on a cluster: two Pods of "
                              "`resources:`)")


def _runs_as(ctx: RunContext, probe: Probed) -> str | None:
    """The host user's uid:gid on a local engine (its files are the user's); elsewhere the one
    the backend runs the sandbox's commands as (a Pod's non-root uid)."""
    expected = ctx.user if ctx.provider.shares_disk else probe.user
    got = probe.seen.get("uid", "<missing>")
    return None if got == expected else f"uid:gid is {got!r}, expected {expected!r}"


def _own_gateway(ctx: RunContext, probe: Probed) -> str | None:
    if probe.seen.get("socat") != "present":
        return f"the image {probe.given.image} has no socat"
    status, caller = probe.seen.get("gateway_status", ""), probe.seen.get("gateway_caller", "")
    if status != "200":
        return f"the forwarder on 127.0.0.1:{GATEWAY_PORT} answered {status or 'nothing'!r}"
    return None if caller == probe.name else f"the gateway answered as {caller!r}'s"


def _supervisor_out_of_reach(ctx: RunContext, probe: Probed) -> str | None:
    """Where the lead's commands go through a supervisor: it is not the worker's, and the
    worker can neither signal, read nor write it, nor change its program."""
    if not probe.supervised:
        return None
    seen = probe.seen
    problems = []
    first = seen.get("first_uid")
    if first is None or first == seen.get("uid", "").split(":")[0]:
        problems.append(f"it runs as the worker's uid ({first or 'not reported'})")
    if seen.get("first_reach", "<missing>"):
        problems.append(f"the worker reaches it: {seen.get('first_reach', '<missing>')}")
    if seen.get("supervisor_writable") != "no":
        problems.append(f"{SUPERVISOR_PROGRAM} is writable")
    return "; ".join(problems) or None


def _key_nowhere(ctx: RunContext, probe: Probed) -> str | None:
    """The API key in no file runner made for the probe (its clone, its Gradle home); its
    environment is judged by the secrets rule."""
    found = probe.key_files
    return f"the API key is in {', '.join(found)}" if found else None


_RULES: list[tuple[str, Rule, str]] = [
    ("workdir is /workspace", _fact_is("pwd", WORKSPACE, "the working directory"),
     "the image must not override the working directory"),
    ("own git dir", _fact_is("git_dir", f"{WORKSPACE}/.git", "the git dir"),
     "the worker's clone must be a standalone repo at /workspace"),
    ("own branch", _expect("branch", lambda ctx, probe: ctx.branch(probe), "the branch"),
     "the clone must be checked out on the branch runner gave it"),
    # Without its own markers the other probe's look proves nothing: this one fails too.
    ("workspace writable", _fact_is("markers", "made", "making its own markers"),
     "the clone and the Gradle home must belong to the user the worker runs as"),
    ("other worker's files invisible", _fact_is("other_marker", "absent", "the other probe's "
                                                "marker"),
     "each worker needs its own clone: check the workspace paths are distinct"),
    ("Gradle home private", _fact_is("other_gradle_marker", "absent", "the other probe's "
                                     "Gradle marker"),
     "each worker needs its own GRADLE_USER_HOME directory"),
    ("Gradle home writable", _fact_is("gradle_writable", "yes", "writing the Gradle home"),
     "the Gradle home must belong to the user the worker runs as"),
    ("host repo unreachable", _fact_is("host_marker", "absent", "a host-only file"),
     "nothing of the host may be mounted but the clone, the Gradle home and the objects"),
    ("no docker socket", _fact_is("sockets", "", "the sockets found"),
     "never mount the Docker socket into a worker"),
    ("no DOCKER_HOST", _fact_is("docker_host", "", "DOCKER_HOST"),
     "do not pass DOCKER_HOST to workers"),
    ("no network (network: none)", _network,
     "run workers with network none, or set network: bridge in the phase on purpose; on "
     "Kubernetes, use a cluster whose network plugin enforces NetworkPolicy"),
    ("only its own mounts", _mounts, "remove the extra mounts from the worker container"),
    ("no host secrets in env", _secrets,
     "remove each where it comes from: rebuild the image without it (an image's ENV "
     "reaches every worker), or take it out of the worker spec; one from neither leaked "
     "from the host's environment (a command ticket that needs a host variable names it "
     "in `env:`)"),
    ("runs as the worker's user", _runs_as,
     "workers must run as the uid:gid runner gives them (the host user's; a non-root one in "
     "a Pod): the image must not override it"),
    ("all capabilities dropped", _fact_is("cap_eff", "0000000000000000", "CapEff"),
     "start workers with cap_drop ALL"),
    ("no new privileges", _fact_is("no_new_privs", "1", "NoNewPrivs"),
     "start workers with security_opt no-new-privileges"),
    ("run objects read-only", _fact_is("objects_writable", "no", "writing the run's objects"),
     "mount the run's object store read-only"),
    ("other host objects unreadable", _fact_is("host_object", "absent", "an object only the "
                                               "host repo has"),
     "workers' clones must borrow the run's object store, never the host repo's"),
    ("root filesystem read-only", _fact_is("rootfs_writable", "no", "writing /"),
     "start workers with a read-only root filesystem"),
    ("no DNS", _fact_is("dns", "none", "resolving example.com"),
     "workers must not resolve names: only the gateway reaches out"),
    ("the supervisor out of the worker's reach", _supervisor_out_of_reach,
     "the supervisor must run as a uid that is not the worker's, its program mounted "
     "read-only (a worker running as uid 65533 has its commands run through engine execs)"),

]
# The way out, checked when the run has a gateway.
_GATEWAY_RULES: list[tuple[str, Rule, str]] = [
    ("gateway answers, as its own", _own_gateway,
     "the image needs socat for the gateway's forwarder (apt-get install socat); each worker "
     "must get its own gateway socket"),
    ("unlisted host refused", _fact_is("unlisted_status", "403", f"a CONNECT to {UNLISTED_HOST}"),
     "the gateway must refuse every host that `egress:` does not list"),
    ("the relay's directory closed to the worker", _relay_closed,
     "the gateway's relay must run as a user that is not the worker's, in a directory only "
     "it can enter"),
    ("API key in no file", _key_nowhere,
     "the API key must stay in runner: nothing may write it into a workspace"),
]
