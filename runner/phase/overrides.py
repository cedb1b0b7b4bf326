"""Phase settings from the command line and the environment, without editing the phase file.

Precedence: flag > environment variable > phase file > default.

| setting          | flag            | environment variable  |
|------------------|-----------------|-----------------------|
| concurrency      | --concurrency N | RUNNER_CONCURRENCY    |
| image            | --image IMAGE   | RUNNER_IMAGE          |
| engine           | --engine ENGINE | RUNNER_ENGINE         |
| network          | --network NAME  | RUNNER_NETWORK        |
| models.simple    | --model-simple  | RUNNER_MODEL_SIMPLE   |
| models.nuanced   | --model-nuanced | RUNNER_MODEL_NUANCED  |
| models.complex   | --model-complex | RUNNER_MODEL_COMPLEX  |
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from runner.errors import OverrideError
from runner.phase.model import Phase

SETTINGS = {"concurrency": "RUNNER_CONCURRENCY", "image": "RUNNER_IMAGE",
            "engine": "RUNNER_ENGINE",
            "network": "RUNNER_NETWORK", "models.simple": "RUNNER_MODEL_SIMPLE",
            "models.nuanced": "RUNNER_MODEL_NUANCED", "models.complex": "RUNNER_MODEL_COMPLEX"}


def apply_overrides(phase: Phase, *, flags: Mapping[str, Any],
                    env: Mapping[str, str]) -> Phase:
    """``phase`` with the flags and environment variables that are set applied; a bad value
    is an OverrideError naming its flag or variable."""
    # Only what the file set, so that a field left out stays one left out (a warning that
    # names a field the phase set must not see it set by an override of another).
    data = phase.model_dump(exclude_unset=True)
    for setting, variable in SETTINGS.items():
        value, source = flags.get(setting), f"--{setting.replace('models.', 'model-')}"
        if value is None and env.get(variable):
            value, source = env[variable], variable
        if value is None:
            continue
        section, _, key = setting.rpartition(".")
        (data.setdefault(section, {}) if section else data)[key] = value
        try:
            phase = Phase.model_validate(data)
        except ValidationError as e:
            message = e.errors()[0]["msg"].removeprefix("Value error, ")
            raise OverrideError(source, setting, value, message) from e
    return phase
