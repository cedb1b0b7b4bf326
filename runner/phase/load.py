"""A phase file read: YAML -> Phase, every problem one PhaseFileError line naming the file,
the field path (``tickets[2].run``) and the ticket id, so the user can fix it without a
traceback; what each ticket's kind asks of it, and dependencies that exist and do not loop."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from runner.agents import KINDS, kinds_where
from runner.errors import PhaseFileError
from runner.phase import safeyaml
from runner.phase.model import (RESERVED_IDS, ClaudeConfig, DevcontainerImage, DockerfileImage,
                                GradleConfig, Phase, Ticket)
from runner.text import quoted


def load_phase(path: Path) -> Phase:
    """Read and validate a phase file; raise PhaseFileError naming the field at fault."""
    data = safeyaml.parse(path, safeyaml.read_text(path))
    if not isinstance(data, dict):
        raise PhaseFileError(path, "the phase file must be a YAML mapping with name and tickets")
    try:
        phase = Phase.model_validate(data)
    except ValidationError as e:
        raise _translate(path, data, e) from e
    _check_tickets(path, phase)
    cache = phase.gradle.shared_cache
    if cache is not None and not cache.is_absolute():   # relative to the phase file
        phase = phase.model_copy(update={"gradle": GradleConfig(
            shared_cache=(path.parent / cache).resolve())})
    binary = phase.claude.binary
    if binary is not None and not binary.is_absolute():
        phase = phase.model_copy(update={"claude": ClaudeConfig(
            binary=(path.parent / binary).resolve())})
    if phase.cache is not None and phase.cache.dir is not None \
            and not phase.cache.dir.is_absolute():
        phase = phase.model_copy(update={"cache": phase.cache.model_copy(
            update={"dir": (path.parent / phase.cache.dir).resolve()})})
    if not isinstance(phase.image, str):      # its paths are relative to the phase file
        phase = phase.model_copy(update={"image": _absolute(phase.image, path.parent)})
        from runner.phase.devcontainer import recipe_for

        recipe_for(phase.image, path)         # a missing file, a bad devcontainer.json: now
    return phase


def _absolute(image: DockerfileImage | DevcontainerImage,
              folder: Path) -> DockerfileImage | DevcontainerImage:
    paths = {name: (folder / value).resolve() for name, value in image if isinstance(value, Path)}
    return image.model_copy(update=paths)


def _translate(path: Path, data: dict[str, Any], error: ValidationError) -> PhaseFileError:
    first = error.errors()[0]
    loc = list(first["loc"])
    field, ticket = _field_path(loc), None
    if len(loc) >= 2 and loc[0] == "tickets" and isinstance(loc[1], int):
        raw = (data.get("tickets") or [None] * (loc[1] + 1))[loc[1]]
        if isinstance(raw, dict) and isinstance(raw.get("id"), str):
            ticket = raw["id"]
    message = _message(first)
    more = error.error_count() - 1
    if more:
        message += f" (and {more} more problem{'s' if more > 1 else ''})"
    return PhaseFileError(path, message, field=field, ticket=ticket)


def _field_path(loc: list[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not str(part).startswith(("function-", "literal[", "form-")):
            out += f".{part}" if out else str(part)
    return out


def _message(error: Any) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key; remove it or check its spelling"
    if kind == "missing":
        return "required field is missing"
    if kind == "finite_number":
        return "must be a finite number (.inf and .nan set no limit)"
    if kind == "string_pattern_mismatch":
        return (f"{quoted(error['input'])} may use only letters, digits, '.', '_' and '-', and may "
                "not start with '.', contain '..' or end in '.lock'")
    return error["msg"].removeprefix("Value error, ")


def _check_work(path: Path, at: str, ticket: Ticket) -> None:
    """A ticket gives what its kind works from (a prompt, or a shell to run), and nothing
    its kind does not take."""
    kind = KINDS[ticket.agent]
    if kind.works_from == "run" and not (ticket.run or "").strip():
        raise PhaseFileError(path, f"{kind.article} {kind.name} ticket needs 'run': the shell "
                             "to run in /workspace", field=f"{at}.run", ticket=ticket.id)
    if kind.works_from == "prompt" and not (ticket.prompt or "").strip():
        raise PhaseFileError(path, f"{kind.article} {kind.name} ticket needs 'prompt': what "
                             "the agent is to do", field=f"{at}.prompt", ticket=ticket.id)
    if kind.works_from == "prompt" and ticket.run is not None:
        raise PhaseFileError(path, f"{kind.article} {kind.name} ticket takes 'prompt', not "
                             "'run' (that is for " + " and ".join(kinds_where(works_from="run"))
                             + " tickets)", field=f"{at}.run", ticket=ticket.id)
    if ticket.env and not kind.takes_env:
        raise PhaseFileError(path, "only " + " and ".join(kinds_where(takes_env=True))
                             + " tickets may take host variables",
                             field=f"{at}.env", ticket=ticket.id)


def _check_tickets(path: Path, phase: Phase) -> None:
    seen: set[str] = set()
    for index, ticket in enumerate(phase.tickets):
        at = f"tickets[{index}]"
        if ticket.id.startswith("_") or ticket.id in RESERVED_IDS:
            raise PhaseFileError(path, "this id is reserved for runner (ids starting with '_', "
                                 + ", ".join(sorted(RESERVED_IDS)) + ")",
                                 field=f"{at}.id", ticket=ticket.id)
        if ticket.id in seen:
            raise PhaseFileError(path, "duplicate ticket id; ids must be unique",
                                 field=f"{at}.id", ticket=ticket.id)
        seen.add(ticket.id)
        _check_work(path, at, ticket)
    ids = {t.id for t in phase.tickets}
    for index, ticket in enumerate(phase.tickets):
        for dep in ticket.depends_on:
            if dep not in ids:
                raise PhaseFileError(path, f"depends on unknown ticket {quoted(dep)}",
                                     field=f"tickets[{index}].depends_on", ticket=ticket.id)
    cycle = find_cycle({t.id: list(t.depends_on) for t in phase.tickets})
    if cycle:
        index = next(i for i, t in enumerate(phase.tickets) if t.id == cycle[0])
        raise PhaseFileError(path, "dependency cycle: " + " -> ".join(cycle),
                             field=f"tickets[{index}].depends_on", ticket=cycle[0])


def find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """Return one dependency cycle as [a, b, ..., a], or None. Depth first with a stack of
    its own: a chain of a thousand tickets would overflow Python's."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    for root in graph:
        if root in state:
            continue
        path, todo = [root], [iter(graph.get(root, []))]
        state[root] = 1
        while todo:
            dep = next(todo[-1], None)
            if dep is None:
                state[path.pop()] = 2
                todo.pop()
            elif state.get(dep) == 1:
                return path[path.index(dep):] + [dep]
            elif dep not in state:
                state[dep] = 1
                path.append(dep)
                todo.append(iter(graph.get(dep, [])))
    return None
