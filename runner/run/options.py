"""How a run was asked to go: the command line's options, recorded for a resume."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunOptions:
    repo: Path
    phase_file: Path
    concurrency: int | None = None
    sequential: bool = False
    keep: bool = False
    state_dir: Path | None = None     # default: <git dir>/runner
    preflight: bool = True            # the isolation self-test before any ticket
    allow_overlap: bool = False       # let tickets with overlapping paths run at once
    land: bool = False                # fast-forward base to target when all passed
