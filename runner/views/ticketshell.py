"""`runner shell`: an interactive shell where a ticket's worker was, to see what it saw: in
the container a run kept (--keep), or else in a new one over its workspace, made as the
worker's was (the same image, limits, mounts and isolation) and removed when the shell ends."""

from __future__ import annotations

import secrets
from dataclasses import replace

from runner.errors import InputError
from runner.host import STORE, HostRepo, RunObjects, is_driven
from runner.phase import load_phase
from runner.records import PHASE_COPY, EventCollector
from runner.sandbox import connect, resolve
from runner.views.picking import Picked
from runner.worker import RunContext

SHELL = ["bash", "-l"]


def ticket_shell(picked: Picked, host: HostRepo) -> int:
    result, ticket = picked.result, picked.ticket
    phase = load_phase(result.run_dir / PHASE_COPY)
    backend = connect(resolve(phase.engine))
    ctx = RunContext(run_id=result.run_id, phase=phase, host=host, root=result.run_dir,
                     objects=RunObjects(host, path=result.run_dir / STORE,
                                        run_id=result.run_id, base=result.base_sha),
                     provider=backend.provider(run_id=result.run_id, root=result.run_dir),
                     sink=EventCollector())
    from runner.worker import sandbox_spec

    if ticket not in result.outcomes and is_driven(result.run_dir):
        raise InputError(f"{ticket} is still running in run {result.run_id}; `runner logs "
                         f"{ticket} -f` follows it, and a shell opens once it ends")
    attempt = picked.attempt(None) if ticket in result.outcomes else None
    number = attempt.number if attempt else 0
    place = f"reruns/{number}" if number else ""
    checkout = ctx.checkout(ticket, attempt.start if attempt and attempt.start else "",
                            place=place, fresh=False)
    spec = sandbox_spec(ctx, ticket, checkout)
    with ctx.provider.reopen(spec) as kept:
        if kept is not None:
            print(f"runner: a shell in {kept.name}, the container the run kept; exit leaves "
                  "it as it is", flush=True)
            return kept.interact(SHELL)
    if not any(clone == ticket for where, clone in ctx.provider.kept() if where == place):
        raise InputError(f"{ticket}'s workspace is gone (`runner clean` removed it"
                         f"{backend.engine.kept_workspace_advice}); its "
                         "commits are in its ref: `runner diff` and `runner apply` show them")
    spec = replace(spec, name=f"{spec.name}-shell-{secrets.token_hex(2)}",
                   labels={**spec.labels, "runner.shell": "1"})
    print(f"runner: a shell in a new container over {ticket}'s workspace, as its worker had "
          "it; it is removed when you exit", flush=True)
    try:
        with ctx.provider.open(spec) as sandbox:
            return sandbox.interact(SHELL)
    finally:
        ctx.provider.settle()
