"""The command line: verbs, shell completion, cleanup, the demo, runner init."""

from runner.cli.commands import main

__all__ = ["main"]
