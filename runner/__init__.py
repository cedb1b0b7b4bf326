"""runner: a container-sandboxed worker runner for phases of coding tickets."""

__version__ = "0.1.0"
