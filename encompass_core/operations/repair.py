"""Finding images stuck in a transitional state whose owning process is gone, and fixing them;
cleaning what such processes left running (helpers, mounts, work files).

A clone whose creating process died before the clone was whole is removed, with whatever the
pools hold of it; other images go to their crash state (usually ``error``, with the reason).
"""

from __future__ import annotations

import contextlib

import attrs

from .. import lifecycle, rundir
from ..context import Context
from ..errors import EncompassError
from ..model import Event, Image
from ..store import Transaction
from . import holding
from .delete import purge_leftovers


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


@attrs.frozen
class Unremoved:
    """An image in ``error`` still naming volumes its failed operation could not remove (its
    ``removing``: a pool refused or did not answer), and what repair does (or did) about them."""

    name: str
    volumes: tuple[str, ...]  # their locations
    action: str


def find_stuck(ctx: Context) -> list[Stuck]:
    """Every image in a transitional state, with whether its owner still runs."""
    found = []
    with ctx.store.snapshot() as tx:
        held = [image for state in sorted(lifecycle.TRANSITIONAL) for image in tx.images(state=state)]
        for image in sorted(held, key=lambda i: i.created):
            if image.owner is None:
                continue
            alive = ctx.store.owner_alive(image.owner)
            status = {True: "alive", False: "gone", None: "unknown"}[alive]
            target = "removed" if _never_made(image) else _crash_target(image)
            target += "".join(f"; storage job {job.id} on pool '{job.pool}' cancelled if running"
                              for job in image.jobs)
            if image.making and not _never_made(image):
                target += f"; half-made volumes '{image.making}' removed"
            if image.removing:
                target += f"; the {len(image.removing)} volume(s) it was removing removed"
            if image.redeploy_on and target.startswith("ready"):
                target += f"; deployed again on machine '{image.redeploy_on}'"
            action = f"-> {target}" if alive is False else "left alone (owner running)" if alive else (
                "left alone (owner on another host; --force to take over)")
            found.append(Stuck(image.name, image.state, image.owner.operation, image.owner.pid,
                               image.owner.host, image.owner.since, status, action))
        found += _undeployed(ctx, tx)
    return found


def _undeployed(ctx: Context, tx: Transaction) -> list[Stuck]:
    """Clones a rebase or rollback undeployed, not held now (it died between its steps), whose
    record says to deploy them again (``redeploy_by``)."""
    found = []
    for image in tx.images(state="ready"):
        intent = image.redeploy_by
        if intent is None or image.owner is not None:
            continue
        alive = ctx.store.owner_alive(intent)
        status = {True: "alive", False: "gone", None: "unknown"}[alive]
        action = (f"-> deployed again on machine '{image.redeploy_on}'" if alive is False
                  else "left alone (owner running)" if alive
                  else "left alone (owner on another host; --force to take over)")
        found.append(Stuck(image.name, image.state, intent.operation, intent.pid, intent.host,
                           intent.since, status, action))
    return found


def repair(ctx: Context, dry_run: bool = False, force: bool = False) -> list[Stuck]:
    """Move images whose owner died to their crash state (usually ``error``, with the reason)."""
    stuck = find_stuck(ctx)
    fixable = {s.name for s in stuck if s.owner == "gone" or (force and s.owner == "unknown")}
    if dry_run or not fixable:
        return stuck
    events: list[Event] = []
    redeploy = _forget_intents(ctx, fixable, force, events)  # clone -> machine to deploy it on
    unmade = _purge_unmade(ctx, fixable, force)
    _purge_making(ctx, fixable, force)
    unfinished = _finish_removals(ctx, fixable, force)
    fixable -= set(unfinished)
    with ctx.store.transaction() as tx:
        for name in fixable:
            image = tx.find_image(name)
            if image is None or image.owner is None or image.state not in lifecycle.TRANSITIONAL:
                continue  # changed since we looked
            if ctx.store.owner_alive(image.owner) and not force:
                continue
            owner = image.owner
            if name in unmade and _never_made(image):
                holding.record(ctx, tx, holding.transition_event(
                    image, "deleted", f"repaired: clone never finished (process {owner.pid} on "
                    f"{owner.host} died); record and leftovers removed", "clone", kind="repair"),
                    events)
                tx.remove_image(name)
                continue
            target = _crash_target(image)
            if image.redeploy_on and target == "ready":
                redeploy[name] = image.redeploy_on
            reason = (f"{owner.operation} interrupted: process {owner.pid} on {owner.host} died "
                      f"while the image was {image.state}")
            repaired = holding.released(image, state=target, removing=(), redeploy_on=None,
                                        redeploy_by=None,
                                        error=reason if target == "error" else image.error)
            finished = (f"; the volume(s) it was removing removed: "
                        f"{', '.join(v.location for v in image.removing)}" if image.removing else "")
            holding.record(ctx, tx, holding.transition_event(
                image, target, f"repaired: {reason}{finished}", owner.operation, kind="repair"), events)
            tx.put_image(repaired)
    holding.announce(ctx, events)
    _clean_machines(ctx, [s for s in stuck
                          if s.name in fixable and s.operation in ("deploy", "undeploy", "migrate")])
    outcome = {name: "done" for name in fixable} | _redeploy(ctx, redeploy)
    outcome |= {name: f"not done: {why}; run encompass repair again" for name, why in unfinished.items()}
    return [attrs.evolve(s, action=f"{s.action} ({outcome[s.name]})") if s.name in outcome else s
            for s in stuck]


def _forget_intents(ctx: Context, fixable: set[str], force: bool, events: list[Event]) -> dict[str, str]:
    """Take over the redeploys that dead processes meant to do (clones not held, undeployed by a
    rebase or rollback): name -> machine, for :func:`_redeploy`, each recorded in the history."""
    redeploy = {}
    with ctx.store.transaction() as tx:
        for name in fixable:
            image = tx.find_image(name)
            intent = image.redeploy_by if image is not None else None
            if intent is None or image.owner is not None or image.state != "ready" or (
                    ctx.store.owner_alive(intent) and not force):
                continue  # held (handled as such), changed since we looked, or its owner runs
            redeploy[name] = image.redeploy_on
            holding.record(ctx, tx, holding.transition_event(
                image, image.state, f"repaired: the {intent.operation} that undeployed it from machine "
                f"'{image.redeploy_on}' (process {intent.pid} on {intent.host}) died before deploying "
                "it again", intent.operation, kind="repair"), events)
            tx.put_image(attrs.evolve(image, redeploy_on=None, redeploy_by=None))
    return redeploy


def _finish_removals(ctx: Context, fixable: set[str], force: bool) -> dict[str, str]:
    """Delete the volumes dead operations were removing (their records no longer name them but
    as ``removing``); name -> why, for the images whose volumes could not all be removed (they
    stay held, for a later repair)."""
    with ctx.store.snapshot() as tx:
        candidates = [tx.find_image(name) for name in fixable]
    failed = {}
    for image in candidates:
        if image is None or not image.removing or image.owner is None or (
                ctx.store.owner_alive(image.owner) and not force):
            continue  # changed since we looked, or still held by a live process
        try:
            holding.delete_volumes(ctx, image.removing)
        except EncompassError as exc:  # a pool's OSError included: delete_volumes says it
            failed[image.name] = f"volume(s) not removed: {exc}"
    return failed


def finish_failed_removals(ctx: Context, dry_run: bool = False) -> list[Unremoved]:
    """Remove again the volumes that operations which failed (not died: a pool refused a
    delete, or was down) left in their images' ``removing``; the images stay in ``error``
    (``encompass image enable`` makes one ready). One the pools still refuse stays named."""
    with ctx.store.snapshot() as tx:
        found = [image for image in tx.images(state="error") if image.removing and image.owner is None]
    done = []
    for image in found:
        locations = tuple(v.location for v in image.removing)
        if dry_run:
            done.append(Unremoved(image.name, locations, "-> removed"))
            continue
        try:
            holding.delete_volumes(ctx, image.removing)
        except EncompassError as exc:
            done.append(Unremoved(image.name, locations,
                                  f"not removed: {exc}; run encompass repair again"))
            continue
        events: list[Event] = []
        with ctx.store.transaction() as tx:
            current = tx.find_image(image.name)
            if current is None or current.owner is not None or current.removing != image.removing:
                continue  # deleted, taken or changed since: the volumes are gone all the same
            holding.record(ctx, tx, holding.transition_event(
                current, current.state, f"repaired: the {len(locations)} volume(s) a failed "
                f"operation left to remove removed: {', '.join(locations)}", kind="repair"), events)
            tx.put_image(attrs.evolve(current, removing=()))
        holding.announce(ctx, events)
        done.append(Unremoved(image.name, locations, "-> removed (done)"))
    return done


def _redeploy(ctx: Context, machines: dict[str, str]) -> dict[str, str]:
    """Deploy each clone again on the machine a dead rebase (or rollback) had undeployed it from,
    as that operation would have; name -> what came of it, for those not deployed again."""
    if not machines:
        return {}
    from .deploy import deploy  # the platforms' machinery: imported only when needed

    outcome = {}
    for name, machine in machines.items():
        try:
            deploy(ctx, name, machine)
        except (EncompassError, OSError) as exc:
            outcome[name] = (f"done, but deploying it again on '{machine}' failed: {exc}; deploy it "
                             f"by hand: encompass deploy {name} {machine}")
    return outcome


def _clean_machines(ctx: Context, interrupted: list[Stuck]) -> None:
    """Let each platform remove what a killed deploy or undeploy left on the machine involved
    (a half-made definition); the claim itself is settled by :func:`.claims.reconcile`."""
    if not interrupted:
        return
    with ctx.store.snapshot() as tx:
        machines = tx.machines()
    names = {s.name for s in interrupted}
    for machine in machines:
        if machine.image in names:
            with contextlib.suppress(EncompassError):  # unreachable now: reconcile reports it
                ctx.platform(machine.platform).driver.cleanup(machine)


def _crash_target(image: Image) -> str:
    target = lifecycle.crash_state(image.state, image.owner.previous_state)
    return "error" if target == "new" else target


def _never_made(image: Image) -> bool:
    """A clone whose creating process died before it was written back whole: nothing of it
    is worth keeping (no customization was applied yet), begun or not."""
    return (image.owner is not None and image.owner.operation == "clone"
            and image.owner.previous_state == lifecycle.NEW)


def _purge_unmade(ctx: Context, fixable: set[str], force: bool) -> set[str]:
    """Purge the pools' leftovers (half-made volumes, ``.partial`` files) of never-finished
    clones whose owner is gone; the names whose leftovers are gone."""
    with ctx.store.snapshot() as tx:
        candidates = [tx.find_image(name) for name in fixable]
    purged = set()
    for image in candidates:
        if image is None or not _never_made(image) or (ctx.store.owner_alive(image.owner) and not force):
            continue
        try:
            _cancel_jobs(ctx, image)
            purge_leftovers(ctx, image)
        except (EncompassError, OSError):
            continue  # left in error instead, with its reason: delete then purges again
        purged.add(image.name)
    return purged


def _purge_making(ctx: Context, fixable: set[str], force: bool) -> None:
    """Remove the volumes a dead update or rebase was making (under the image's ``making``
    storage name, in the pools of its volumes): the image's own volumes were never touched."""
    with ctx.store.snapshot() as tx:
        candidates = [tx.find_image(name) for name in fixable]
    for image in candidates:
        if image is None or not image.making or _never_made(image) or (
                ctx.store.owner_alive(image.owner) and not force):
            continue
        for pool in sorted({v.pool for v in image.volumes}):
            with contextlib.suppress(EncompassError, OSError):  # unreachable: the files stay, named
                ctx.pool(pool).driver.cleanup(image.making)


def clean_leftovers(ctx: Context, dry_run: bool = False) -> list[rundir.Leftover]:
    """End the helper processes, unmount the mounts and remove the work files that processes
    which died left in their run directories (see :mod:`encompass_core.rundir`)."""
    return rundir.sweep(ctx.home, dry_run=dry_run)


def _cancel_jobs(ctx: Context, image: Image) -> None:
    """Stop the long storage-side jobs a dead clone started (a VolumeCopy runs on without us):
    the driver says where each stands, and one still running is cancelled."""
    for job in image.jobs:
        driver = ctx.pool(job.pool).driver
        if driver.job_status(job).state == "running":
            driver.cancel_job(job)
