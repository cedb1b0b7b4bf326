"""`runner schema`: the phase file's JSON Schema, made from the models that read it (so it
says what they accept), for an editor's completion and checks as the file is written."""

from __future__ import annotations

import json

from runner import __version__

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def phase_schema() -> dict[str, object]:
    from runner.phase.model import Phase

    schema = Phase.model_json_schema()
    return {"$schema": SCHEMA_DIALECT, "title": "runner phase file",
            "description": f"A phase of tickets for `runner run` (runner {__version__}). Some "
                           "rules are checked only when runner reads the file: ids unique, "
                           "dependencies known and acyclic, engine and image names.",
            **{k: v for k, v in schema.items() if k != "title"}}


def schema_text() -> str:
    return json.dumps(phase_schema(), indent=2) + "\n"
