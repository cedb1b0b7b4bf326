"""Making a worker's clone inside its sandbox, for a backend that shares no disk with the
runner (a remote Docker engine, Kubernetes): what the worker may read goes in as one git bundle
(the run's object store: base's history and the integrated work), and git clones it there, as
the worker. And what names a file such a backend carries in: its sha256.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

from runner.sandbox import Checkout

HISTORY = ".runner-history.bundle"     # uploaded into the workspace, removed once cloned
# Inside the sandbox, as the worker: a repo at /workspace with the bundle's objects and the
# start commit checked out on its branch; the bundle's own refs do not stay.
# Repeatable (a run whose stream broke, sandbox/cuts.py): once its bundle is gone, it is made.
CLONE = r"""
cd /workspace
if [ ! -e "$1" ] && git rev-parse -q --verify HEAD >/dev/null; then exit 0; fi
git init --quiet --template= .
git fetch --quiet --no-tags "$1" '+refs/*:refs/runner-history/*'
git update-ref "refs/heads/$2" "$3"
git symbolic-ref HEAD "refs/heads/$2"
git reset --quiet --hard
git for-each-ref --format='delete %(refname)' refs/runner-history | git update-ref --stdin
rm -f "$1"
"""


def history_bundle(checkout: Checkout, folder: Path | None) -> Path:
    """What the worker may read, as a bundle: the run's store once it holds ``start``."""
    checkout.history.ensure(checkout.start)
    return checkout.history.bundle(folder or Path(tempfile.gettempdir()))


_sums: dict[tuple[Path, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """The sha256 of ``path``'s bytes, hashed once per version of the file in this process
    (the Claude Code binary is 0.4 GB)."""
    stat = path.stat()
    key = (path, stat.st_size, stat.st_mtime_ns)
    if key not in _sums:
        digest = hashlib.sha256()
        with path.open("rb") as data:
            while chunk := data.read(1 << 20):
                digest.update(chunk)
        _sums[key] = digest.hexdigest()
    return _sums[key]
