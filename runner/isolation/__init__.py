"""Isolation proven: the self-test's probes, the judgement of a worker's environment, the image
check, runner doctor."""

from __future__ import annotations

from typing import TYPE_CHECKING

from runner.faces import lazy_names


# What other packages import from here, by the module that holds it: each loaded when
# first asked for (runner/faces.py).
_EXPORTS = {
    "runner.isolation.doctor": ("run_doctor",),
    "runner.isolation.imagecheck": ("image_refusal",),
    "runner.isolation.selftest": ("run_selftest",),
}
__getattr__ = lazy_names(__name__, globals(), _EXPORTS)

if TYPE_CHECKING:
    from runner.isolation.doctor import run_doctor
    from runner.isolation.imagecheck import image_refusal
    from runner.isolation.selftest import run_selftest
