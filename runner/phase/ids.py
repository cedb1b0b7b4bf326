"""Run and ticket ids as a user types them: each names a directory or a file under the run
directory, so one with ``/`` or ``..`` would read or write outside it (``runner logs ../x``).
Checked where they come in, before any path is made of them."""

from __future__ import annotations

import re

from runner.errors import InputError
from runner.text import quoted

# Letters, digits, . _ - ; and nothing git refuses in a ref component (leading ., .., .lock).
NAME_PATTERN = r"^(?!\.)(?!.*\.\.)(?!.*\.lock$)[A-Za-z0-9._-]+$"
# What new_run_id makes (20260101-120000-ab12), and any other plain name a user kept a run as.
RUN_ID_PATTERN = r"^(?!\.)[A-Za-z0-9._-]+$"
MAX_LENGTH = 100


def checked_run_id(value: str) -> str:
    if len(value) > MAX_LENGTH or not re.fullmatch(RUN_ID_PATTERN, value):
        raise InputError(f"RUN_ID {quoted(value)} is not a run id: one like 20260101-120000-"
                         "ab12 (letters, digits, '.', '_', '-', not starting with '.'); "
                         "`runner status` lists the runs")
    return value


def checked_ticket_id(value: str) -> str:
    if len(value) > MAX_LENGTH or not re.fullmatch(NAME_PATTERN, value):
        raise InputError(f"TICKET {quoted(value)} is not a ticket id (letters, digits, '.', "
                         "'_', '-', not starting with '.' nor holding '..'); `runner status "
                         "RUN_ID` lists a run's tickets")
    return value
