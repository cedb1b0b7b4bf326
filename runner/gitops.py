"""Every git call runner makes, as subprocesses with hooks and risky config neutralised.

Only runner-owned repositories and the host repo are touched here; a worker's clone is
never operated on from the host after its container starts (its .git/config is hostile).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from runner.errors import GitError, RepoError
from runner.hostview import in_container
from runner.trees import discard_tree

# Applied to every call: no hooks, no fsmonitor, no signing prompts, no pager, and no
# background gc or maintenance repacking the host repo while workers borrow its objects.
SAFE_CONFIG = ("-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false",
                "-c", "gc.auto=0", "-c", "maintenance.auto=false",
                "-c", "commit.gpgSign=false", "-c", "tag.gpgSign=false",
                "-c", "core.pager=cat", "-c", "advice.detachedHead=false")
_ENV = {"LC_ALL": "C", "GIT_TERMINAL_PROMPT": "0", "GIT_COMMITTER_NAME": "runner",
        "GIT_COMMITTER_EMAIL": "runner@localhost", "GIT_LITERAL_PATHSPECS": "1"}
# git needs none of runner's secrets; a process that does not hold them cannot leak them.
_SECRETS = frozenset({"ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"})
# Runner-owned clones check out worker-written files (.gitattributes and all): there, none of
# the user's global or system config (filters, LFS, merge drivers) may apply.
_ISOLATED_ENV = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
                 "GIT_LFS_SKIP_SMUDGE": "1"}


def git(cwd: Path, *args: str, check: bool = True, isolated: bool = False,
        env: Mapping[str, str] | None = None,
        input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run git in ``cwd``; raise GitError when ``check`` and it fails. ``isolated`` drops
    the user's global and system config (for runner-owned clones); ``env`` adds to git's
    environment (an identity), ``input`` is its stdin."""
    argv = ["git", *SAFE_CONFIG, *args]
    full = {name: value for name, value in os.environ.items() if name not in _SECRETS}
    full |= _ENV | (_ISOLATED_ENV if isolated else {}) | dict(env or {})
    # Messages and names are bytes a worker chose: keep any that are not UTF-8 as they are
    # (surrogateescape round-trips them) instead of failing to decode them.
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, env=full, input=input,
                          encoding="utf-8", errors="surrogateescape")
    if check and proc.returncode != 0:
        raise GitError(args, proc.returncode, proc.stderr)
    return proc


def git_out(cwd: Path, *args: str) -> str:
    return git(cwd, *args).stdout.strip()


@dataclass(frozen=True)
class HostRepo:
    """The user's repository: read refs, receive collected refs; never its worktree."""

    top: Path          # the working tree (or the git dir of a bare repo)
    git_dir: Path      # the common git dir: objects, refs, runner's own state

    @property
    def objects(self) -> Path:
        return self.git_dir / "objects"

    @property
    def state_dir(self) -> Path:
        """Where runner keeps its runs by default."""
        return self.git_dir / "runner"

    def resolve(self, ref: str) -> str | None:
        proc = git(self.top, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}",
                   check=False)
        return proc.stdout.strip() if proc.returncode == 0 else None

    def checked_out_branches(self) -> dict[str, Path]:
        """Branches checked out in any worktree of the repo: short name -> worktree."""
        branches, worktree = {}, self.top
        for line in git_out(self.top, "worktree", "list", "--porcelain").splitlines():
            if line.startswith("worktree "):
                worktree = Path(line.removeprefix("worktree "))
            elif line.startswith("branch refs/heads/"):
                branches[line.removeprefix("branch refs/heads/")] = worktree
        return branches

    def fetch(self, source: Path, refspecs: list[str]) -> None:
        """Fetch from a runner-owned repo; objects are checked on the way in (fetch.* too:
        a repo's fetch.fsckObjects=false would beat transfer.* given on the command line)."""
        git(self.top, "-c", "transfer.fsckObjects=true", "-c", "fetch.fsckObjects=true",
            "fetch", "--quiet", "--no-tags", "--no-write-fetch-head", str(source), *refspecs)

    def fetch_bundle(self, bundle: Path, ref: str, *, readable: Path) -> None:
        """Fetch a worker's bundle (its HEAD) into ``ref``, every object checked.

        Older git (Debian bookworm's 2.39, the runner image's) does not check a bundle's
        objects when fetching from the bundle itself; every version checks them on a fetch
        between repositories. So the bundle goes first into a runner-owned quarantine repo,
        and the host fetches from there. The quarantine borrows ``readable``, the objects the
        worker could read: a commit naming any other object is refused as incomplete rather
        than completed from the host's objects (a worker guessing a secret blob's id).
        """
        quarantine = Path(tempfile.mkdtemp(prefix=f"{bundle.name}.", suffix=".quarantine",
                                           dir=bundle.parent))
        try:
            init_bare(quarantine, borrowing=readable)
            git(bundle.parent, f"--git-dir={quarantine}", "fetch", "--quiet", "--no-tags",
                "--no-write-fetch-head", str(bundle), "+HEAD:refs/bundle", isolated=True)
            self.fetch(quarantine, [f"+refs/bundle:{ref}"])
        finally:
            discard_tree(quarantine)

    def config(self, key: str) -> str | None:
        """A value of the repo's git config as git sees it there (the user's global config
        too), or None when unset or empty."""
        proc = git(self.top, "config", "--get", key, check=False)
        return (proc.stdout.strip() or None) if proc.returncode == 0 else None

    def update_ref(self, ref: str, sha: str) -> None:
        git(self.top, "update-ref", ref, sha)

    def changed_files(self, old: str, new: str) -> list[str]:
        out = git(self.top, "diff", "-z", "--name-only", "--no-renames", old, new).stdout
        return [name for name in out.split("\0") if name]

    def is_branch_name(self, name: str) -> bool:
        return git(self.top, "check-ref-format", "--branch", name, check=False).returncode == 0

    def delete_ref(self, ref: str) -> None:
        git(self.top, "update-ref", "-d", ref)

    def held_elsewhere(self, commit: str, ref: str, namespace: str) -> bool:
        """Whether another ref under ``namespace`` already contains ``commit``."""
        out = git_out(self.top, "for-each-ref", "--format=%(refname)", "--contains", commit,
                      namespace)
        return any(name != ref for name in out.splitlines())

    def is_ancestor(self, old: str, new: str) -> bool:
        return git(self.top, "merge-base", "--is-ancestor", old, new, check=False).returncode == 0

    def commits(self, old: str, new: str, paths: list[str] | None = None) -> list[str]:
        """Short ids of old..new, oldest first (those touching ``paths`` when given)."""
        out = git_out(self.top, "log", "--reverse", "--format=%h", f"{old}..{new}", "--",
                      *(paths or []))
        return out.split()

    def sizes(self, commit: str, paths: list[str]) -> dict[str, int]:
        """Blob sizes of ``paths`` at ``commit`` (deleted files are absent)."""
        out = git(self.top, "ls-tree", "-r", "-l", "-z", commit, "--", *paths).stdout
        sizes = {}
        for entry in filter(None, out.split("\0")):
            meta, name = entry.split("\t", 1)
            size = meta.split()[3]
            if size != "-":
                sizes[name] = int(size)
        return sizes

    def count_commits(self, old: str, new: str) -> int:
        return int(git_out(self.top, "rev-list", "--count", f"{old}..{new}"))


def open_host_repo(path: Path) -> HostRepo:
    proc = git(path, "rev-parse", "--path-format=absolute", "--git-common-dir",
               "--is-bare-repository", check=False) if path.is_dir() else None
    if proc is None or proc.returncode != 0:
        hint = (" (runner runs in a container and sees only the directory mounted at its "
                "own path: run it from the repo's top level)") if in_container() else ""
        raise RepoError(f"{path} is not inside a git repository{hint}; pass --repo DIR or run "
                        "runner from inside the repository")
    git_dir, bare = proc.stdout.splitlines()[:2]
    top = git_dir if bare == "true" else git_out(path, "rev-parse", "--show-toplevel")
    return HostRepo(top=Path(top), git_dir=Path(git_dir))


def init_bare(path: Path, *, borrowing: Path | None = None) -> None:
    """A runner-owned bare repo at ``path``, none of the user's config or templates, that
    borrows the objects at ``borrowing`` (alternates) when given."""
    path.parent.mkdir(parents=True, exist_ok=True)
    git(path.parent, "init", "--quiet", "--bare", "--template=", str(path), isolated=True)
    if borrowing is not None:
        (path / "objects" / "info").mkdir(parents=True, exist_ok=True)
        (path / "objects" / "info" / "alternates").write_text(f"{borrowing}\n")


def init_linked_clone(dest: Path, objects: Path, branch: str, commit: str) -> None:
    """Make a repo at ``dest`` that borrows ``objects`` (alternates, no copies, no hard
    links) and check out ``commit`` on ``branch``, with none of the user's git config."""
    dest = dest.resolve()
    git(dest.parent, "init", "--quiet", "--template=", str(dest), isolated=True)
    (dest / ".git" / "objects" / "info").mkdir(parents=True, exist_ok=True)
    set_alternates(dest, objects)
    # Name the repo explicitly: never let git discover an enclosing repo (the user's).
    where = (f"--git-dir={dest / '.git'}", f"--work-tree={dest}")
    git(dest, *where, "update-ref", f"refs/heads/{branch}", commit, isolated=True)
    git(dest, *where, "symbolic-ref", "HEAD", f"refs/heads/{branch}", isolated=True)
    git(dest, *where, "reset", "--quiet", "--hard", isolated=True)


def set_alternates(repo: Path, objects: Path | str) -> None:
    (repo / ".git" / "objects" / "info" / "alternates").write_text(f"{objects}\n")
