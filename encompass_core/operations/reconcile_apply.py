"""Applying a reconciliation: each plan of :mod:`.reconcile` in its own transaction, checked
again against the store as it is then, so a second run (or an operation meanwhile) changes
nothing twice. Images are never changed while an operation holds them; every change to an image
is an event in its history.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from .. import lifecycle
from ..context import Context
from ..model import Event, Image, Machine, now
from ..store import Transaction
from . import holding
from .reconcile import Entry, Finding


def apply_all(ctx: Context, entries: list[Entry]) -> list[Finding]:
    """Carry out every entry's plan; the findings with what was done."""
    done = []
    for entry in entries:
        if entry.plan is None:
            done.append(entry.finding)
            continue
        kind, *args = entry.plan
        events: list[Event] = []
        with ctx.store.transaction() as tx:
            result = _PLANS[kind](ctx, tx, events, *args)
        holding.announce(ctx, events)
        action = result or f"{entry.finding.action} (done)"
        done.append(attrs.evolve(entry.finding, action=action))
    return done


# -- machines ---------------------------------------------------------------------------------
def _machine_new(ctx: Context, tx: Transaction, events: list[Event], found: Machine) -> str | None:
    if tx.find_machine(found.name) is not None:
        return "left alone: recorded meanwhile"
    tx.put_machine(attrs.evolve(found, image=None, discovered=now(), missing=None))
    return None


def _machine_refresh(ctx: Context, tx: Transaction, events: list[Event], found: Machine,
                     name: str) -> str | None:
    record = tx.find_machine(name)
    if record is None:
        return "left alone: its record was removed meanwhile"
    image, note = record.image, None
    # What the platform says wins, but the deployed image is Encompass' own record; a claim on
    # an image deleted since is stale (nothing is left to protect).
    if image and tx.find_image(image) is None:
        image, note = None, f"facts refreshed; claim on deleted image '{record.image}' released (done)"
    _put_found(tx, found, record, image)
    return note


def _machine_move(ctx: Context, tx: Transaction, events: list[Event], found: Machine,
                  old: str) -> str | None:
    record = tx.find_machine(old)
    if record is None:
        return "left alone: its record was removed meanwhile"
    claimed = [i for i in tx.images(machine=old)]
    busy = [i.name for i in claimed if i.state in lifecycle.TRANSITIONAL]
    if busy:
        return f"left alone: image '{busy[0]}' is busy; run encompass discover --apply again later"
    if old != found.name:
        tx.remove_machine(old)
    _put_found(tx, found, record, record.image)
    for image in claimed:
        _change_image(ctx, tx, events, attrs.evolve(image, machine=found.name),
                      f"its machine '{old}' was found as '{found.name}' on platform "
                      f"'{found.platform}' (encompass discover)", image)
    return None


def _put_found(tx: Transaction, found: Machine, record: Machine, image: str | None) -> None:
    """The record as the platform describes the machine now, keeping what only Encompass knows
    (the image it runs, its own notes in ``extra``)."""
    tx.put_machine(attrs.evolve(found, image=image, extra={**record.extra, **found.extra},
                                discovered=now(), missing=None))


def _machine_missing(ctx: Context, tx: Transaction, events: list[Event], name: str) -> str | None:
    record = tx.find_machine(name)
    if record is None or record.missing:
        return "left alone: already marked or removed"
    tx.put_machine(attrs.evolve(record, missing=now(), power="unknown"))
    return None


# -- volumes ----------------------------------------------------------------------------------
def _held(tx: Transaction, name: str) -> tuple[Image | None, str | None]:
    image = tx.find_image(name)
    if image is None:
        return None, f"left alone: image '{name}' was removed meanwhile"
    if image.state in lifecycle.TRANSITIONAL:
        return None, (f"left alone: image '{name}' is busy ({image.state}); run encompass "
                      "discover --apply again later")
    return image, None


def _volume_change(ctx: Context, tx: Transaction, events: list[Event], name: str, index: int,
                   change: Callable, message: str) -> str | None:
    image, refused = _held(tx, name)
    if image is None:
        return refused
    volumes = tuple(change(v) if v.index == index else v for v in image.volumes)
    if volumes == image.volumes:
        return "nothing to change"
    _change_image(ctx, tx, events, attrs.evolve(image, volumes=volumes), message, image)
    return None


def _volume_move(ctx, tx, events, name, index, found) -> str | None:
    return _volume_change(
        ctx, tx, events, name, index,
        lambda v: attrs.evolve(v, location=found.location, data={**v.data, **found.data}, missing=None),
        f"volume {index} found at {found.location} in pool '{found.pool}' (encompass discover)")


def _volume_missing(ctx, tx, events, name, index) -> str | None:
    return _volume_change(ctx, tx, events, name, index,
                          lambda v: v if v.missing else attrs.evolve(v, missing=now()),
                          f"volume {index} not found in its pool (encompass discover); marked missing")


def _volume_seen(ctx, tx, events, name, index) -> str | None:
    return _volume_change(ctx, tx, events, name, index, lambda v: attrs.evolve(v, missing=None),
                          f"volume {index} found again in its pool (encompass discover)")


def _volume_attach(ctx, tx, events, name, item) -> str | None:
    image, refused = _held(tx, name)
    if image is None:
        return refused
    if any(v.index == item.volume.index for v in image.volumes):
        return f"left alone: image '{name}' has a volume {item.volume.index} already"
    volumes = tuple(sorted((*image.volumes, item.volume), key=lambda v: v.index))
    _change_image(ctx, tx, events, attrs.evolve(image, volumes=volumes),
                  f"volume {item.volume.index} found at {item.volume.location} in pool "
                  f"'{item.volume.pool}' and attached (encompass discover)", image)
    return None


def _volume_adopt(ctx, tx, events, name, item) -> str | None:
    if tx.find_image(name) is not None:
        return f"left alone: an image '{name}' exists now"
    master = Image(name=name, kind="master", state="ready", version=1,
                   volumes=(attrs.evolve(item.volume, missing=None),))
    tx.add_image(master)
    holding.record(ctx, tx, Event(
        image=name, kind="operation", operation="discover", from_state=lifecycle.NEW,
        to_state="ready", message=f"adopted as a master: volume found at {item.volume.location} in "
        f"pool '{item.volume.pool}' (encompass discover)"), events)
    return None


def _change_image(ctx: Context, tx: Transaction, events: list[Event], changed: Image, message: str,
                  before: Image) -> None:
    tx.put_image(changed)
    holding.record(ctx, tx, Event(image=changed.name, kind="operation", operation="discover",
                                  from_state=before.state, to_state=changed.state,
                                  message=message), events)


_PLANS: dict[str, Callable[..., str | None]] = {
    "machine-new": _machine_new,
    "machine-refresh": _machine_refresh,
    "machine-move": _machine_move,
    "machine-missing": _machine_missing,
    "volume-move": _volume_move,
    "volume-missing": _volume_missing,
    "volume-seen": _volume_seen,
    "volume-attach": _volume_attach,
    "volume-adopt": _volume_adopt,
}
