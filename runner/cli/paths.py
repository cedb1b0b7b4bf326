"""Where a command's runs keep their state: the flags', the repo's, this folder's."""

from __future__ import annotations

import argparse
from pathlib import Path


def state_dir_of(args: argparse.Namespace) -> Path:
    from runner.host import open_host_repo

    return absolute(args.state_dir) or open_host_repo(args.repo.resolve()).state_dir


def absolute(path: Path | None) -> Path | None:
    return path.resolve() if path is not None else None


def default_state_dir() -> Path:
    from runner.errors import RepoError
    from runner.host import open_host_repo

    try:
        return open_host_repo(Path.cwd()).state_dir
    except RepoError:
        return Path.cwd()
