"""The objects a run's workers may read: what base reaches, and the run's integrated work.

Workers' clones borrow objects through git alternates from a store mounted read-only at
RUN_OBJECTS. Borrowing the host repo's own store would show every worker all of it: other
branches, stashes, unreachable objects. So each run has a store of its own, a bare repo in
its run dir filled by fetches from the host repo: base's history when the run starts, the
integrated head whenever a ticket starts from it. One copy per run, shared by its workers.
"""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

from runner.errors import RepoError
from runner.gitops import HostRepo, git


class RunObjects:
    def __init__(self, host: HostRepo, *, path: Path, run_id: str) -> None:
        self.host, self.path = host, path
        self.refs = (f"refs/runner/{run_id}/base", f"refs/runner/{run_id}/integrated")
        self._lock = threading.Lock()       # workers start (and fetch) concurrently

    @property
    def objects(self) -> Path:
        return self.path / "objects"

    @classmethod
    def open(cls, host: HostRepo, *, path: Path, run_id: str, base: str) -> RunObjects:
        """The run's store at ``path``, made and filled with ``base`` when new."""
        store = cls(host, path=path, run_id=run_id)
        if not (path / "objects").is_dir():
            path.parent.mkdir(parents=True, exist_ok=True)
            git(path.parent, "init", "--quiet", "--bare", "--template=", str(path),
                isolated=True)
        host.update_ref(store.refs[0], base)     # also keeps base from the host's gc
        store.ensure(base)
        return store

    def ensure(self, commit: str) -> None:
        """Make ``commit`` readable here: it is base, or the integrated head or before it."""
        with self._lock:
            if self._has(commit):
                return
            present = [ref for ref in self.refs if self.host.resolve(ref)]
            self._git("fetch", "--quiet", "--no-tags", "--no-write-fetch-head",
                      str(self.host.git_dir), *(f"+{ref}:{ref}" for ref in present))
            if not self._has(commit):
                raise RepoError(f"{commit[:12]} is neither base nor integrated work of this "
                                "run; a worker may start only from those")

    def _has(self, commit: str) -> bool:
        return self._git("cat-file", "-e", f"{commit}^{{commit}}", check=False).returncode == 0

    def _git(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return git(self.path, f"--git-dir={self.path}", *args, check=check, isolated=True)
