"""The gateway's relay as a sandbox runs it, on an engine that cannot reach this machine's
gateway socket: shell and socat, as a user that is not the worker's (runner's half:
tunnel.py). A Pod runs it in a container of its own beside the worker's (kube/pods.py); a
remote Docker engine's container, beside its keeper (docker/remote.py).

The relay listens on 127.0.0.1:GATEWAY_PORT, the worker's loopback. For each connection, a
child of the relay announces its pid on a FIFO, again each second until joined, and waits
for runner's end of it: a unix socket named after that pid, in the relay's own directory,
which the worker cannot enter.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from runner.sandbox import GATEWAY_PORT, RELAY_DIR     # RELAY_DIR: the FIFO, the sockets

MAX_CHILDREN = 16          # connections relayed at once; more wait in the listen queue
JOIN_WAIT = 500            # 20 ms steps a child waits for runner's end of it (10 s)
# Seconds runner's end of a child listens for it: longer than the child waits, so a child
# that gave up leaves no listener behind (exec processes outlive their closed streams).
LISTEN_TIMEOUT = JOIN_WAIT // 50 + 5

# One connection, as a child of the relay. Its socket's file exists a moment before it
# listens, so a refused connect is tried again; once joined and ended, the file is gone.
_CHILD = (f'sock={RELAY_DIR}/$$.sock; i=0; '
          f'while [ $i -lt {JOIN_WAIT} ]; do '
          f'[ $((i % 50)) = 0 ] && echo $$ > {RELAY_DIR}/new; '
          f'if [ -S $sock ]; then socat STDIO UNIX-CONNECT:$sock 2>/dev/null && exit 0; '
          f'[ -S $sock ] || exit 1; fi; '
          f'sleep 0.02; i=$((i+1)); done; exit 1')
# The relay's own process. socat's address syntax would cut the child's script at its
# colons, so the script goes in a file of the relay's directory.
# A FIFO kept from before (a container started again over the same directory) serves again.
_MAIN = (f'printf "%s\\n" "$1" > {RELAY_DIR}/child && '
         f'{{ [ -p {RELAY_DIR}/new ] || mkfifo -m 600 {RELAY_DIR}/new; }} && '
         f'exec socat TCP4-LISTEN:{GATEWAY_PORT},bind=127.0.0.1,reuseaddr,fork,backlog=128,'
         f'max-children={MAX_CHILDREN} SYSTEM:"exec sh {RELAY_DIR}/child"')
RELAY_COMMAND = ["sh", "-c", _MAIN, "relay", _CHILD]


def beside(keep_up: Sequence[str]) -> list[str]:
    """A container's own command that runs the relay in the background and then becomes
    ``keep_up`` (both as the container's user)."""
    return ["sh", "-c", f'(sh -c "$1" relay "$2") & exec {shlex.join(keep_up)}', "keeper",
            _MAIN, _CHILD]

# runner's reader of the announcements. It ends an earlier reader whose stream broke (one
# still reading would take announcements to nowhere), holds the FIFO open both ways so that
# it never sees an end between two children, and says something every 20 s so that no proxy
# on the way takes the stream for idle.
READ_ANNOUNCEMENTS = (
    f'[ -p {RELAY_DIR}/new ] || exit 3; '
    f'old=$(cat {RELAY_DIR}/reader 2>/dev/null); '
    f'[ -n "$old" ] && [ "$(cat /proc/$old/comm 2>/dev/null)" = cat ] && kill "$old"; '
    f'echo $$ > {RELAY_DIR}/reader; (while sleep 20 && echo; do :; done) & '
    f'exec cat 0<>{RELAY_DIR}/new')
# runner's end of one child, opened before a child needs it (an exec takes a while to
# start): it reads the child's pid from stdin, which runner sends once the child is
# announced, then listens for that child alone, for LISTEN_TIMEOUT. `read` takes a pipe byte
# by byte, so socat gets all that follows.
JOIN = (f'IFS= read -r child || exit 3; case $child in ""|*[!0-9]*) exit 3;; esac; '
        f'[ -d "/proc/$child" ] || exit 3; '
        f'exec socat STDIO UNIX-LISTEN:{RELAY_DIR}/$child.sock,unlink-early,unlink-close,'
        f'listen-timeout={LISTEN_TIMEOUT}')
