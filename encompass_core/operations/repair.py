"""Finding images stuck in a transitional state whose owning process is gone, and fixing them;
cleaning what such processes left running (helpers, mounts, work files)."""

from __future__ import annotations

import attrs

from .. import lifecycle, rundir
from ..context import Context
from ..model import Event
from ..store import owner_alive
from . import holding


@attrs.frozen
class Stuck:
    """An image held by an operation, and what repair does (or did) about it."""

    name: str
    state: str
    operation: str
    pid: int
    host: str
    since: str
    owner: str  # alive | gone | unknown (another host)
    action: str  # what repair did or would do


def find_stuck(ctx: Context) -> list[Stuck]:
    """Every image in a transitional state, with whether its owner still runs."""
    found = []
    with ctx.store.snapshot() as tx:
        for image in tx.images():
            if image.state not in lifecycle.TRANSITIONAL or image.owner is None:
                continue
            alive = owner_alive(image.owner)
            status = {True: "alive", False: "gone", None: "unknown"}[alive]
            target = lifecycle.crash_state(image.state, image.owner.previous_state)
            if target == "new":
                target = "error"
            action = f"-> {target}" if alive is False else "left alone (owner running)" if alive else (
                "left alone (owner on another host; --force to take over)")
            found.append(Stuck(image.name, image.state, image.owner.operation, image.owner.pid,
                               image.owner.host, image.owner.since, status, action))
    return found


def repair(ctx: Context, dry_run: bool = False, force: bool = False) -> list[Stuck]:
    """Move images whose owner died to their crash state (usually ``error``, with the reason)."""
    stuck = find_stuck(ctx)
    fixable = {s.name for s in stuck if s.owner == "gone" or (force and s.owner == "unknown")}
    if dry_run or not fixable:
        return stuck
    events: list[Event] = []
    with ctx.store.transaction() as tx:
        for name in fixable:
            image = tx.find_image(name)
            if image is None or image.owner is None or image.state not in lifecycle.TRANSITIONAL:
                continue  # changed since we looked
            if owner_alive(image.owner) and not force:
                continue
            owner = image.owner
            target = lifecycle.crash_state(image.state, owner.previous_state)
            if target == "new":
                target = "error"
            reason = (f"{owner.operation} interrupted: process {owner.pid} on {owner.host} died "
                      f"while the image was {image.state}")
            repaired = attrs.evolve(image, state=target, owner=None,
                                    error=reason if target == "error" else image.error)
            holding.record(ctx, tx, holding.transition_event(image, target, f"repaired: {reason}",
                                                             owner.operation, kind="repair"), events)
            tx.put_image(repaired)
    holding.announce(ctx, events)
    return [attrs.evolve(s, action=f"{s.action} (done)") if s.name in fixable else s for s in stuck]


def clean_leftovers(ctx: Context, dry_run: bool = False) -> list[rundir.Leftover]:
    """End the helper processes, unmount the mounts and remove the work files that processes
    which died left in their run directories (see :mod:`encompass_core.rundir`)."""
    return rundir.sweep(ctx.home, dry_run=dry_run)
