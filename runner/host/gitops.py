"""Every git call runner makes, as subprocesses with hooks and risky config neutralised.

Only runner-owned repositories and the host repo are touched here; a worker's clone is
never operated on from the host after its container starts (its .git/config is hostile).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from runner.errors import GitError, RepoError
from runner.host.hostview import in_container
from runner.host.trees import discard_tree

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


def _environment(isolated: bool, env: Mapping[str, str] | None) -> dict[str, str]:
    full = {name: value for name, value in os.environ.items() if name not in _SECRETS}
    return full | _ENV | (_ISOLATED_ENV if isolated else {}) | dict(env or {})


def git(cwd: Path, *args: str, check: bool = True, isolated: bool = False,
        env: Mapping[str, str] | None = None,
        input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run git in ``cwd``; raise GitError when ``check`` and it fails. ``isolated`` drops
    the user's global and system config (for runner-owned clones); ``env`` adds to git's
    environment (an identity), ``input`` is its stdin. Its whole output is kept: for output
    whose size a worker chooses (names, commits), use git_records."""
    argv = ["git", *SAFE_CONFIG, *args]
    # Messages and names are bytes a worker chose: keep any that are not UTF-8 as they are
    # (surrogateescape round-trips them) instead of failing to decode them.
    try:
        proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, input=input,
                              env=_environment(isolated, env), encoding="utf-8",
                              errors="surrogateescape")
    except OSError as e:      # git could not start (E2BIG, ENOENT): the caller's error too
        raise GitError(args, -1, str(e)) from e
    if check and proc.returncode != 0:
        raise GitError(args, proc.returncode, proc.stderr)
    return proc


def git_lines(cwd: Path, *args: str) -> Iterator[str]:
    """git's output line by line as git writes it (git_records on newlines; a line longer
    than RECORD_LIMIT comes in pieces)."""
    return git_records(cwd, *args, separator=b"\n", pieces=True)


def git_out(cwd: Path, *args: str, isolated: bool = False) -> str:
    return git(cwd, *args, isolated=isolated).stdout.strip()


RECORD_LIMIT = 1 << 16    # bytes of one record (a path) git_records takes
_CHUNK = 1 << 16


def git_records(cwd: Path, *args: str, isolated: bool = False, separator: bytes = b"\0",
                pieces: bool = False) -> Iterator[str]:
    """The NUL-separated records of git's ``-z`` output, one at a time as git writes them:
    memory stays bounded whatever number of files or commits a worker made. A record longer
    than RECORD_LIMIT (a path nested thousands of levels deep) is a GitError (with
    ``pieces``, it comes in pieces of that size), as is git failing. Stop early and git is
    stopped."""
    argv = ["git", *SAFE_CONFIG, *args]
    with tempfile.TemporaryFile() as errors:      # a file: git's stderr never blocks it
        try:
            proc = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=errors,
                                    env=_environment(isolated, None))
        except OSError as e:
            raise GitError(args, -1, str(e)) from e
        assert proc.stdout is not None
        try:
            partial = b""
            while chunk := proc.stdout.read1(_CHUNK):
                *records, partial = (partial + chunk).split(separator)
                if len(partial) > RECORD_LIMIT and pieces:
                    records.append(partial)
                    partial = b""
                elif len(partial) > RECORD_LIMIT:
                    raise GitError(args, -1, f"a name in its output is longer than "
                                             f"{RECORD_LIMIT:,} bytes")
                for record in records:
                    yield record.decode("utf-8", "surrogateescape")
            if partial:
                yield partial.decode("utf-8", "surrogateescape")
            if proc.wait() != 0:
                errors.seek(max(0, errors.seek(0, os.SEEK_END) - 4096))
                raise GitError(args, proc.returncode,
                               errors.read().decode("utf-8", "replace"))
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.stdout.close()
            proc.wait()


@dataclass(frozen=True)
class Change:
    """One file a diff changed: its path, and its new blob (None when deleted or not a
    blob: a submodule)."""

    path: str
    blob: str | None


def changes(cwd: Path, old: str, new: str, *, isolated: bool = False) -> Iterator[Change]:
    """The files that differ between two commits, streamed (``diff-tree -z`` raw records:
    a ``:modes ids status`` record, then the path)."""
    records = git_records(cwd, "diff-tree", "-r", "-z", "--no-renames", "--no-commit-id",
                          old, new, "--", isolated=isolated)
    for meta in records:
        if (path := next(records, None)) is None:
            raise GitError(["diff-tree", old, new], -1, f"no path after {meta!r}")
        _, new_mode, _, blob, status = meta.lstrip(":").split(" ", 4)
        gone = status.startswith("D") or new_mode == "160000"
        yield Change(path, None if gone else blob)


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

    def file_at(self, commit: str, path: str, limit: int = 1 << 16) -> str | None:
        """The text of ``path`` in ``commit`` (None when it has none, or it is larger)."""
        size = git(self.top, "cat-file", "-s", f"{commit}:{path}", check=False)
        if size.returncode != 0 or int(size.stdout.strip() or 0) > limit:
            return None
        return git(self.top, "cat-file", "blob", f"{commit}:{path}").stdout

    def paths_named(self, commit: str, name: str) -> list[str]:
        """Every path of ``commit``'s tree whose file is called ``name``."""
        listed = git_out(self.top, "ls-tree", "-r", "-z", "--name-only", commit)
        return [path for path in listed.split("\0")
                if path == name or path.endswith("/" + name)]

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

    def fetch_bundle(self, bundle: Path, ref: str, *, readable: Path,
                     accept: Callable[[str], None] | None = None) -> str:
        """Fetch a worker's bundle (its HEAD) into ``ref``, every object checked; return
        that HEAD. ``accept`` sees it first, before the host repo does, and refuses it by
        raising.

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
            where = f"--git-dir={quarantine}"
            git(bundle.parent, where, "fetch", "--quiet", "--no-tags", "--no-write-fetch-head",
                str(bundle), "+HEAD:refs/bundle", isolated=True)
            head = git_out(bundle.parent, where, "rev-parse", "--verify", "refs/bundle",
                           isolated=True)
            if accept is not None:
                accept(head)
            self.fetch(quarantine, [f"+refs/bundle:{ref}"])
            return head
        finally:
            discard_tree(quarantine)

    def config(self, key: str) -> str | None:
        """A value of the repo's git config as git sees it there (the user's global config
        too), or None when unset or empty."""
        proc = git(self.top, "config", "--get", key, check=False)
        return (proc.stdout.strip() or None) if proc.returncode == 0 else None

    def update_ref(self, ref: str, sha: str) -> None:
        git(self.top, "update-ref", ref, sha)

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

    def commits(self, old: str, new: str, *, shown: int = 10) -> str:
        """The short ids of old..new, oldest first, the first ``shown`` of them and how many
        more ("none" when there are none)."""
        ids, more = [], 0
        for record in git_records(self.top, "log", "-z", "--reverse", "--format=%h",
                                  f"{old}..{new}"):
            if len(ids) < shown:
                ids.append(record)
            else:
                more += 1
        return ", ".join(ids) + (f" and {more:,} more" if more else "") if ids else "none"

    def commits_touching(self, old: str, new: str, paths: set[str]) -> list[str]:
        """Short ids of old..new, oldest first, that change any of ``paths`` (one streamed
        ``log --raw``: no argv grows with the paths)."""
        found, commit = [], ""
        records = git_records(self.top, "log", "-z", "--reverse", "--raw", "--no-renames",
                              "--format=%h", f"{old}..{new}")
        for record in records:
            if record.lstrip("\n").startswith(":"):     # a raw record; its path follows
                if next(records, None) in paths and (not found or found[-1] != commit):
                    found.append(commit)
            else:
                commit = record.strip("\n")
        return found

    def changes_with_sizes(self, old: str, new: str) -> Iterator[tuple[Change, int | None]]:
        """Each file old..new changed, with its size at ``new`` (None when deleted or not a
        blob). A streamed diff-tree merged with a streamed ``ls-tree -r -l``: both list
        paths in the same (tree) order, so each size is found by reading on, never by a
        lookup per file or a list held."""
        listing = git_records(self.top, "ls-tree", "-r", "-l", "-z", new)
        for change in changes(self.top, old, new):
            if change.blob is None:
                yield change, None
                continue
            for entry in listing:
                meta, path = entry.split("\t", 1)
                if path == change.path:
                    size = meta.split()[3]
                    yield change, None if size == "-" else int(size)
                    break
            else:
                raise GitError(["ls-tree", "-r", new], -1, f"no {change.path!r} in its listing")

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
    git(dest.parent, "init", "--quiet", "--template=", f"--initial-branch={branch}", str(dest),
        isolated=True)
    (dest / ".git" / "objects" / "info").mkdir(parents=True, exist_ok=True)
    set_alternates(dest, objects)
    # Name the repo explicitly: never let git discover an enclosing repo (the user's). On
    # the unborn branch, a reset makes it and checks the commit out.
    where = (f"--git-dir={dest / '.git'}", f"--work-tree={dest}")
    git(dest, *where, "reset", "--quiet", "--hard", commit, isolated=True)


def set_alternates(repo: Path, objects: Path | str) -> None:
    (repo / ".git" / "objects" / "info" / "alternates").write_text(f"{objects}\n")
