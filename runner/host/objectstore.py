"""The objects a run's workers may read: what base reaches, and the run's integrated work.

Workers' clones borrow objects through git alternates from a store mounted read-only at
RUN_OBJECTS. Borrowing the host repo's own store would show every worker all of it: other
branches, stashes, unreachable objects. So each run has a store of its own, a bare repo in
its run dir filled from the host repo (pushed there): base's history when the first
workspace is made, the integrated head whenever a ticket starts from it. One copy per run,
shared by its workers. A worker's bundle is checked against this store too
(HostRepo.fetch_bundle), so a commit naming an object the worker could not read is refused,
not completed from the host's objects.
"""

from __future__ import annotations

import hashlib
import subprocess
import threading
from pathlib import Path

from runner.errors import RepoError
from runner.host.gitops import HostRepo, git, init_bare
from runner.host.refs import base_ref, integrated_ref

STORE = "objects.git"       # in the run dir


class RunObjects:
    def __init__(self, host: HostRepo, *, path: Path, run_id: str, base: str) -> None:
        self.host, self.path, self.base = host, path, base
        self.base_ref = base_ref(run_id)
        self.integrated_ref = integrated_ref(run_id)
        self._lock = threading.Lock()       # workers start (and fill it) concurrently
        self._known: set[str] = set()       # commits it holds (it only ever gains objects)

    @property
    def objects(self) -> Path:
        return self.path / "objects"

    def ensure(self, commit: str) -> None:
        """Make ``commit`` readable here (made on first use): it must be base, or the
        integrated head or before it."""
        with self._lock:
            if self.objects.is_dir() and self._has(commit):
                return
            if not self.objects.is_dir():
                self._known.clear()
                init_bare(self.path)
                # receive-pack runs here with the user's global config: no hooks of theirs;
                # a shallow host repo may push.
                self._git("config", "core.hooksPath", "/dev/null")
                self._git("config", "receive.shallowUpdate", "true")
            # Named refs only: never whatever else the host repo holds.
            self.host.update_ref(self.base_ref, self.base)   # also keeps base from gc
            refs = [self.base_ref] + ([self.integrated_ref]
                                      if self.host.resolve(self.integrated_ref) else [])
            # Pushed by the host repo, as every other git call there runs (the user's
            # safe.directory applies; a fetch from it would check its .git path instead).
            git(self.host.top, "push", "--quiet", "--no-verify", "--no-follow-tags",
                "--no-recurse-submodules", str(self.path),
                *(f"+{ref}:{ref}" for ref in refs))
            if not self._has(commit):
                raise RepoError(f"{commit[:12]} is neither base nor integrated work of this "
                                "run; a worker may start only from those")

    def bundle(self, folder: Path) -> Path:
        """Everything the store holds now, as a git bundle in ``folder`` (for an engine that
        cannot mount the store): made once per state of the store, under the lock, and
        shared by every sandbox that starts from that state."""
        with self._lock:
            refs = self._git("for-each-ref", "--format=%(objectname) %(refname)").stdout
            path = folder / f"history-{hashlib.sha256(refs.encode()).hexdigest()[:16]}.bundle"
            if not path.exists():
                folder.mkdir(parents=True, exist_ok=True)
                made = self._git("bundle", "create", "--quiet", str(path), "--all")
                if made.returncode != 0:
                    raise RepoError("git bundle of the run's objects failed: "
                                    f"{made.stderr.strip()}")
            return path

    def _has(self, commit: str) -> bool:
        if commit not in self._known and self._git(
                "cat-file", "-e", f"{commit}^{{commit}}").returncode == 0:
            self._known.add(commit)
        return commit in self._known

    def _git(self, *args: str) -> subprocess.CompletedProcess[str]:
        return git(self.path, f"--git-dir={self.path}", *args, check=False, isolated=True)
