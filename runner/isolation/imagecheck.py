"""Once per run, before any ticket: does the phase's image hold what runner runs in every
worker (sandbox/needs.py)? Asked of one sandbox of the image with no workspace, on the run's
own engine, so that it holds for a Pod as for a container. A missing piece is one line
naming it and how to add it, never a ticket failing later with a cryptic error."""

from __future__ import annotations

import re
import secrets

from runner.sandbox import FIND_MISSING, Limits, SandboxSpec, how_to_add, needed
from runner.text import last_line, printable
from runner.worker import RunContext

CHECKER = "_image"     # the name its sandbox is labelled with, as a probe's is
# What an engine says when the program an exec starts is not there (Docker's, runc's, a
# kubelet's): the program's name is quoted in it.
_NOT_FOUND = re.compile(r'"?([\w.+-]+)"?: (?:executable file )?not found|'
                        r'exec: "([\w.+-]+)"|([\w.+-]+): No such file')


def image_refusal(ctx: RunContext) -> str | None:
    """Why the run's image cannot carry its workers, or None when it has what they need."""
    image = ctx.phase.image
    wanted = needed(gateway=ctx.gateway is not None)
    spec = SandboxSpec(
        name=f"{ctx.container_name(CHECKER)}-{secrets.token_hex(2)}", image=image, env={},
        labels={"runner.run": ctx.run_id, "runner.ticket": CHECKER,
                **({"runner.run-dir": str(ctx.root)} if ctx.provider.shares_disk else {})},
        limits=Limits(cpus=min(0.5, ctx.phase.resources.cpus), memory="256m", pids=64),
        user=ctx.user)
    with ctx.provider.open(spec) as sandbox:
        result = sandbox.exec(["sh", "-c", FIND_MISSING, "needs", *wanted], timeout=60,
                              repeatable=True)
    said = result.output.strip().splitlines()
    found = [line for line in said if line.startswith("missing:")]
    if result.exit_code == 0 and found:
        missing = found[-1].removeprefix("missing:").split()
    else:
        # The engine could not even start sh (or `timeout`, which every command runs under).
        names = [n for m in _NOT_FOUND.finditer(result.output) for n in m.groups() if n]
        if not names:
            return (f"the image {image} cannot run runner's commands "
                    f"({printable(last_line(result.output)) or f'exit {result.exit_code}'}): "
                    "it needs sh, bash, git and coreutils at least")
        missing = [n for n in dict.fromkeys(names) if n in wanted] or names[:1]
        wanted = {**wanted, **{n: n for n in missing if n not in wanted}}
    return how_to_add(image, missing, wanted) if missing else None
