"""What runner itself runs inside every sandbox, whatever the image: the programs its commands,
checks, collection, disk watch and self-test call, each with the Debian package that has it.

One list, used twice: the layer runner adds to an image it builds from a project's Dockerfile
installs what of it the image lacks (sandbox/recipes.py), and every run first checks its
image for all of it (imagecheck.py), so that a missing piece is one line naming it, not a
ticket failing later with a cryptic error.
"""

from __future__ import annotations

from collections.abc import Mapping

# program -> Debian package
NEEDED: Mapping[str, str] = {
    "sh": "dash", "bash": "bash", "git": "git",
    # under every command (`timeout -k`), the keeper (`sleep`), the reset's kill, collection,
    # the disk watchdog (du), the self-test's probe
    "timeout": "coreutils", "sleep": "coreutils", "kill": "procps", "du": "coreutils",
    "env": "coreutils", "cat": "coreutils", "head": "coreutils", "tail": "coreutils",
    "tr": "coreutils", "cut": "coreutils", "wc": "coreutils", "sha256sum": "coreutils",
    "rm": "coreutils", "chown": "coreutils", "find": "findutils",
}
# The gateway's forwarder (sandbox/docker/local.py) and a Pod's relay (sandbox/kube/relay.py).
GATEWAY_NEEDED: Mapping[str, str] = {"socat": "socat"}
# The mount points of a read-only root filesystem (the image must have them: a Pod's
# runtime, unlike Docker's, does not make them).
MOUNT_POINTS = ("/workspace", "/gradle-home", "/gradle-ro-cache", "/runner/objects",
                "/runner/gateway", "/runner/claude", "/runner/supervisor")


def needed(*, gateway: bool) -> dict[str, str]:
    return {**NEEDED, **(GATEWAY_NEEDED if gateway else {})}


# A POSIX sh function: whether program $1 is a file on PATH (`command -v` would also find
# a shell builtin, such as kill, that an exec of it cannot run).
HAS = ('has() { _IFS=$IFS; IFS=:; for d in $PATH; do '
       'if [ -x "$d/$1" ] && [ ! -d "$d/$1" ]; then IFS=$_IFS; return 0; fi; done; '
       'IFS=$_IFS; return 1; }')
# Prints "missing:" and the programs of "$@" not on PATH.
FIND_MISSING = HAS + '; m=""; for t in "$@"; do has "$t" || m="$m $t"; done; echo "missing:$m"'


def packages(programs: list[str], table: Mapping[str, str]) -> list[str]:
    """The Debian packages that hold ``programs``, each once, in order."""
    return list(dict.fromkeys(table[p] for p in programs))


def how_to_add(image: str, missing: list[str], table: Mapping[str, str]) -> str:
    """One sentence: what ``image`` lacks and how to add it."""
    names = ", ".join(missing)
    return (f"the image {image} lacks {names}, which runner runs in every worker: add "
            f"{'it' if len(missing) == 1 else 'them'} to the image (Debian or Ubuntu: "
            f"apt-get install {' '.join(packages(missing, table))}), or build it from your "
            "Dockerfile with image: {dockerfile: …}, which adds what runner needs")
