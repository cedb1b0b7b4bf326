"""The command line: verbs, shell completion, cleanup, the demo, runner init."""

from __future__ import annotations

from typing import TYPE_CHECKING

from runner.faces import lazy_names


from runner.cli.commands import main

__all__ = ["main"]


# What other packages import from here, by the module that holds it: each loaded when
# first asked for (runner/faces.py).
_EXPORTS = {
    "runner.cli.commands": ("main",),
}
__getattr__ = lazy_names(__name__, globals(), _EXPORTS)

if TYPE_CHECKING:
    from runner.cli.commands import main
