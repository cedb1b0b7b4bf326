"""The gateway's relay as the Pod runs it: shell and socat, in a container of its own beside
the worker's (its manifest: pods.py; runner's half: tunnel.py).

The relay listens on 127.0.0.1:GATEWAY_PORT, which the worker's container shares. For each
connection, a child of the relay announces its pid on a FIFO, again each second until joined,
and waits for runner's end of it: a unix socket named after that pid, in the relay's own
directory. The worker can see neither that directory nor the relay's processes.
"""

from __future__ import annotations

from runner.sandbox import GATEWAY_PORT

RELAY = "gateway"          # the relay's container in a Pod that has the gateway
RELAY_DIR = "/relay"       # its own emptyDir: the FIFO and the children's sockets
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
_MAIN = (f'printf "%s\\n" "$1" > {RELAY_DIR}/child && mkfifo -m 600 {RELAY_DIR}/new && '
         f'exec socat TCP4-LISTEN:{GATEWAY_PORT},bind=127.0.0.1,reuseaddr,fork,backlog=128,'
         f'max-children={MAX_CHILDREN} SYSTEM:"exec sh {RELAY_DIR}/child"')
RELAY_COMMAND = ["sh", "-c", _MAIN, "relay", _CHILD]

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
