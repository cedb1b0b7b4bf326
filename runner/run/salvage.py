"""What an interrupted or failed run left in its workspaces, collected into its refs."""

from __future__ import annotations

from runner.errors import RunnerError, WorkspaceAway
from runner.host import attempt_ref, run_refs
from runner.records import Notice
from runner.worker import CollectError, RunContext, collect, commit_leftovers, open_sandbox


def salvage_workspaces(ctx: RunContext, base_sha: str, label: str, *,
                       skip: set[str] = frozenset(), away_aside: bool = False) -> dict[str, str]:
    """Salvage every checkout the provider keeps for the run, its reruns' too (but those of
    ``skip``), so that nothing in them is lost and a ticket run again finds its place free.
    Returns the tickets whose workspaces are still out of reach (a node away), each with
    why: they stay as they are, for a later resume (set aside, with ``away_aside``)."""
    away = {}
    for place, name in ctx.provider.kept():
        if place or name not in skip:
            rerun = place.removeprefix("reruns/")
            if why := salvage(ctx, name, base_sha, place=place, away_aside=away_aside,
                              label=f"{label}-rerun-{rerun}" if place else label):
                away[name] = why
    return away


def salvage(ctx: RunContext, ticket_id: str, base_sha: str, *, place: str, label: str,
            away_aside: bool = False) -> str | None:
    """Collect what a ticket committed (and left) in its checkout through a sandbox over it,
    into refs/runner/<run>/attempts/<ticket>/<label> unless its refs hold it already; then
    discard the checkout. Save before delete: never lose work. A checkout out of reach for
    now is left as it is: why, returned."""
    ref = attempt_ref(ctx.run_id, ticket_id, label)
    try:
        ctx.objects.ensure(base_sha)      # the store its clone borrows from
        checkout = ctx.checkout(ticket_id, base_sha, place=place, fresh=False)
        with open_sandbox(ctx, ticket_id, checkout) as sandbox:
            if sandbox.exec(["test", "-d", ".git"], timeout=60, repeatable=True).exit_code != 0:
                got = None                # never got as far as a clone: nothing to keep
            else:
                # Nothing runs in this fresh container: a lock there is a killed git's.
                sandbox.exec(["rm", "-f", ".git/index.lock"], timeout=60, repeatable=True)
                commit_leftovers(sandbox, f"{ticket_id}: work left in its workspace ({label})",
                                 run_id=ctx.run_id, ticket=ticket_id)
                got = collect(sandbox, ctx.host, start=base_sha, ref=ref,
                              bundle=ctx.root / "bundles" / f"{ticket_id}.{label}.bundle",
                              readable=ctx.objects.objects)
    except WorkspaceAway as e:
        kept = (f"it is kept at {ctx.provider.set_aside(place, ticket_id, label)}"
                if away_aside else "a later resume finishes it")
        ctx.sink.emit(Notice(f"{ticket_id}: {e}; {kept}", level="warning"))
        return str(e)
    except (CollectError, RunnerError) as e:
        # Kept whole, out of the way: the ticket can run again, and nothing is lost.
        aside = ctx.provider.set_aside(place, ticket_id, label)
        ctx.sink.emit(Notice(f"{ticket_id}: could not collect the work in its workspace "
                             f"({e}); it is kept at {aside}", level="warning"))
        return None
    if got is not None and got.tip:
        if ctx.host.held_elsewhere(got.tip, ref, run_refs(ctx.run_id)):
            ctx.host.delete_ref(ref)
        else:
            ctx.sink.emit(Notice(f"{ticket_id}: work found in its workspace is kept at {ref}"))
    if problem := ctx.provider.discard(place, ticket_id):   # never follows a link out
        ctx.sink.emit(Notice(f"{ticket_id}: {problem}", level="warning"))
    return None
