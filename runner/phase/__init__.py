"""The phase file: its model (pydantic, extra="forbid"), safe YAML, path globs, ids, image
references, overrides, the JSON schema, devcontainer.json."""

from __future__ import annotations

from typing import TYPE_CHECKING

from runner.faces import lazy_names


# What other packages import from here, by the module that holds it: each loaded when
# first asked for (runner/faces.py).
_EXPORTS = {
    "runner.phase.devcontainer": ("recipe_for",),
    "runner.phase.globs": ("matches",),
    "runner.phase.ids": ("NAME_PATTERN", "checked_run_id", "checked_ticket_id"),
    "runner.phase.imageref": ("check_image",),
    "runner.phase.load": ("load_phase",),
    "runner.phase.model": ("Phase", "Resources", "Ticket"),
    "runner.phase.overrides": ("apply_overrides",),
    "runner.phase.schema": ("schema_text",),
}
__getattr__ = lazy_names(__name__, globals(), _EXPORTS)

if TYPE_CHECKING:
    from runner.phase.devcontainer import recipe_for
    from runner.phase.globs import matches
    from runner.phase.ids import NAME_PATTERN, checked_run_id, checked_ticket_id
    from runner.phase.imageref import check_image
    from runner.phase.load import load_phase
    from runner.phase.model import Phase, Resources, Ticket
    from runner.phase.overrides import apply_overrides
    from runner.phase.schema import schema_text
