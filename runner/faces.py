"""A package's public face, loaded lazily: its __init__ names what other packages may import
from it and the module each lives in, and a name's module is imported when the name is first
asked for (PEP 562). So `from runner.records import Notice` costs the events module alone,
and `--help` stays as light as it was."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_names(package: str, namespace: dict[str, Any],
               exports: Mapping[str, tuple[str, ...]]) -> Callable[[str], object]:
    """The module-level __getattr__ of ``package`` (whose globals are ``namespace``) for
    ``exports``: each module and the names of it that the package shows."""
    where = {name: module for module, names in exports.items() for name in names}

    def attribute(name: str) -> object:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value          # asked once: an ordinary attribute from then on
        return value

    return attribute
