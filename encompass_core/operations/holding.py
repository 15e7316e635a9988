"""Holding an image in a transitional state for the length of an operation.

:func:`hold` takes the image's lock (its transitional state, with this process as owner),
runs the operation's body, and leaves the image in the operation's success state, or — when
the body fails — back in its previous state if nothing was changed yet, else in ``error``
with the reason. Every change is an :class:`~encompass_core.model.Event` in the history.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence

import attrs

from .. import lifecycle
from ..context import Context
from ..errors import Conflict, DriverError, EncompassError
from ..model import Event, Image, Owner, Volume
from ..store import Transaction, current_owner
from . import claims


def transition_event(image: Image, to_state: str, message: str, operation: str | None = None,
                     kind: str = "transition", **details) -> Event:
    """The event recording ``image`` moving to ``to_state``."""
    return Event(image=image.name, kind=kind, message=message, operation=operation,
                 from_state=image.state, to_state=to_state,
                 pid=os.getpid(), details=details)


def record(ctx: Context, tx: Transaction, event: Event, pending: list[Event]) -> None:
    """Store ``event`` now and remember to announce it once the transaction is written."""
    tx.add_event(event)
    pending.append(event)


def announce(ctx: Context, events: list[Event]) -> None:
    """Tell observers (``encompass_image_event``) about committed events."""
    for event in events:
        ctx.host.notify(event)


@attrs.define
class Holding:
    """The image an operation holds; the body updates ``image`` and sets ``dirty``."""

    image: Image
    operation: lifecycle.Operation
    dirty: bool = False  # set once the body changed something that cannot simply be undone
    message: str = ""  # what the success event says
    removed: bool = False  # the body removed the image (delete)
    result: Image | None = None  # the image as left by finish()
    details: dict = attrs.field(factory=dict)  # the success event's details (the machine...)


def start(ctx: Context, name: str, op_name: str, check=None) -> Holding:
    """Take the lock of image ``name`` for ``op_name``; ``check(tx, image)`` may refuse, or
    return the image as the operation takes it (``making`` set), written with the lock."""
    events: list[Event] = []
    with ctx.store.transaction() as tx:
        image = tx.image(name)
        op = lifecycle.check_start(op_name, image.state, name=image.name, is_master=image.is_master,
                                   error=image.error)
        claims.check(tx, image, op_name)
        if check is not None:
            image = check(tx, image) or image
        held = attrs.evolve(image, state=op.transitional, owner=current_owner(op_name, image.state))
        record(ctx, tx, transition_event(image, op.transitional, f"{op_name} started", op_name), events)
        tx.put_image(held)
    announce(ctx, events)
    return Holding(image=held, operation=op)


def finish(ctx: Context, holding: Holding) -> Image:
    """Leave the held image in the operation's success state (or remove it)."""
    events: list[Event] = []
    op = holding.operation
    with ctx.store.transaction() as tx:
        current = tx.image(holding.image.name)
        _still_ours(current, holding)
        if holding.removed:
            record(ctx, tx, transition_event(current, "deleted", holding.message or f"{op.name} done",
                                             op.name, kind="operation"), events)
            tx.remove_image(current.name)
            done = current
        else:
            target = op.success or current.owner.previous_state
            done = released(holding.image, state=target, error=None)
            record(ctx, tx, transition_event(current, target, holding.message or f"{op.name} done",
                                             op.name, kind="operation", **holding.details), events)
            tx.put_image(done)
    announce(ctx, events)
    return done


def released(image: Image, **changes) -> Image:
    """``image`` let go by the operation that held it (with ``changes``): no owner, and none of
    the fields that mean something only while it is held (``making``; ``redeploy_on`` too,
    unless a process outside this hold will deploy the clone again: ``redeploy_by``)."""
    cleared = {"owner": None, "making": None}
    if image.redeploy_by is None:
        cleared["redeploy_on"] = None
    return attrs.evolve(image, **(cleared | changes))


def intend_redeploy(ctx: Context, name: str, machine: str, op_name: str) -> None:
    """Record, before clone ``name`` is undeployed from ``machine`` for ``op_name`` (a rebase, a
    rollback), that this process deploys it there again: if it dies before, repair does."""
    with ctx.store.transaction() as tx:
        image = tx.image(name)
        if image.owner is None:  # held: the undeploy that follows refuses, and says why
            tx.put_image(attrs.evolve(image, redeploy_on=machine,
                                      redeploy_by=current_owner(op_name, image.state)))


def drop_redeploy(ctx: Context, name: str) -> None:
    """Forget this process's intent to deploy clone ``name`` again (done, or said to have
    failed). Another process's intent is left alone."""
    with ctx.store.transaction() as tx:
        image = tx.find_image(name)
        if image is not None and same_process(image.redeploy_by, current_owner("", "")):
            tx.put_image(attrs.evolve(image, redeploy_by=None,
                                      redeploy_on=image.redeploy_on if image.owner else None))


def owned_by(current: Image, owner: Owner | None) -> bool:
    """Whether ``current`` is still held by ``owner`` (repair on another utility server may
    have reclaimed it after the owner's lease expired)."""
    return owner is not None and same_process(current.owner, owner)


def same_process(one: Owner | None, other: Owner) -> bool:
    """Whether two owner records name the same process (host, pid and start time)."""
    return one is not None and (one.host, one.pid, one.started) == (other.host, other.pid, other.started)


def _still_ours(current: Image, holding: Holding) -> None:
    """Refuse to finish an operation whose image was taken from this process meanwhile."""
    if not owned_by(current, holding.image.owner):
        raise Conflict(
            f"image '{current.name}' is no longer held by this {holding.operation.name} (it is "
            f"{current.state} now, after encompass repair took it over); what was done is not "
            f"recorded: check it (encompass image show {current.name})")


def save(ctx: Context, holding: Holding) -> None:
    """Write the held image as the body has changed it so far, still held: a failure after this
    keeps those changes (the body changed files and records together) and restores only the
    state."""
    with ctx.store.transaction() as tx:
        current = tx.find_image(holding.image.name)
        if current is not None and owned_by(current, holding.image.owner):
            tx.put_image(attrs.evolve(holding.image, state=current.state, owner=current.owner,
                                      making=current.making))


def remove_volumes(ctx: Context, holding: Holding, volumes: Sequence[Volume]) -> None:
    """Delete ``volumes``, which the held image as the body has changed it no longer records.

    The changed image is written first (still held) with the volumes as its ``removing``, so a
    process killed half-way leaves every file owned by a record, and ``encompass repair``
    finishes the removal; a driver's failure leaves the image in ``error``, still naming them.
    """
    holding.image = attrs.evolve(holding.image, removing=tuple(volumes))
    save(ctx, holding)
    holding.dirty = True
    delete_volumes(ctx, volumes)
    holding.image = attrs.evolve(holding.image, removing=())


def delete_volumes(ctx: Context, volumes: Sequence[Volume]) -> None:
    """Delete each volume through its pool's driver (one already gone is not an error).

    Every deletion the core asks for goes through here: a driver that lets an ``OSError``
    through (a file the pool's host refused to remove) is said in one line naming the pool and
    the volume, as a :class:`~encompass_core.errors.DriverError`, not as a traceback."""
    for volume in volumes:
        try:
            ctx.pool(volume.pool).driver.delete_volume(volume)
        except OSError as exc:
            raise DriverError(f"pool '{volume.pool}': cannot delete {volume.location}: "
                              f"{exc.strerror or exc}") from exc


def fail(ctx: Context, holding: Holding, reason: str) -> Image:
    """Leave the held image back where it was (nothing changed) or in ``error``."""
    events: list[Event] = []
    op = holding.operation
    with ctx.store.transaction() as tx:
        current = tx.find_image(holding.image.name)
        if current is None or not owned_by(current, holding.image.owner):
            return current or holding.image  # gone, or taken over: nothing of ours to record
        previous = current.owner.previous_state if current.owner else "error"
        if holding.dirty:
            failed = released(holding.image, state="error", error=f"{op.name}: {reason}")
            message = f"{op.name} failed: {reason}"
        else:
            failed = released(current, state=previous)
            message = f"{op.name} failed, nothing was changed: {reason}"
        record(ctx, tx, transition_event(current, failed.state, message, op.name, kind="operation"), events)
        tx.put_image(failed)
    announce(ctx, events)
    return failed


@contextlib.contextmanager
def hold(ctx: Context, name: str, op_name: str, check=None) -> Iterator[Holding]:
    """Run an operation's body on image ``name`` under its transitional state."""
    holding = start(ctx, name, op_name, check)
    try:
        yield holding
    except KeyboardInterrupt:
        fail(ctx, holding, "interrupted by the user (Ctrl-C)")
        raise
    except EncompassError as exc:
        fail(ctx, holding, str(exc))
        raise
    except Exception as exc:
        fail(ctx, holding, f"{type(exc).__name__}: {exc}")
        raise
    holding.result = finish(ctx, holding)


def change_state(ctx: Context, name: str, target: str) -> Image:
    """A direct change between stable states (disable, enable), checked by the lifecycle. An
    image that still names volumes a failed operation left to remove is not made ready: repair
    removes them (it looks at images in ``error``), and a ready image would keep them forever."""
    events: list[Event] = []
    with ctx.store.transaction() as tx:
        found = tx.image(name)
        change = lifecycle.check_direct(found.state, target, name=name)
        if target == "ready" and found.removing and found.owner is None:
            raise Conflict(
                f"image '{name}' still names {len(found.removing)} volume(s) a failed operation "
                f"left to remove ({', '.join(v.location for v in found.removing)}): run encompass "
                f"repair first, which removes them once the pool can (or encompass image delete "
                f"{name}, if their pool is gone for good)")
        record(ctx, tx, transition_event(found, target, change, change), events)
        changed = attrs.evolve(found, state=target, error=None)
        tx.put_image(changed)
    announce(ctx, events)
    return changed
