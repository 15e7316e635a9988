"""Running one operation's body on many images at once, with bounded workers.

Every image is taken (put in the operation's transitional state, owned by this process) in
one transaction, the bodies run on the one bulk-job engine (:func:`.workers.run_jobs`, which
clone uses too), and finished images are written back in batches, so bookkeeping stays cheap
next to the work.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import attrs

from .. import lifecycle
from ..context import Context
from ..errors import EncompassError, Interrupted
from ..model import Image
from ..store import Transaction, current_owner
from . import claims, holding
from . import workers as workers_mod

# check(tx, image): refuse (raise) or accept an image; it may return the image as the operation
# should take it (e.g. with ``making`` set), written in the same transaction as the lock.
Check = Callable[[Transaction, Image], Image | None]
# failed(name, reason, exit_code): the result of an image whose body raised; ``exit_code`` is
# that of the error's class (errors.py), so the CLI can exit as it would for one image.
Failed = Callable[[str, str, int], Any]


def _start_all(ctx: Context, names: Sequence[str], op_name: str, check: Check | None,
               results: dict[str, Any], failed: Failed) -> tuple[dict[str, holding.Holding], list[Image]]:
    """Take every image that may go through ``op_name``, in one transaction; the refused ones
    get their reason in ``results``."""
    events: list = []
    held: dict[str, holding.Holding] = {}
    with ctx.store.transaction() as tx:
        by_name = {name: image for name in names if (image := tx.find_image(name)) is not None}
        images = _with_lineage(tx, by_name.values())
        claimed = claims.claimed_by(tx)
        for name in names:
            image = by_name.get(name)
            try:
                if image is None:
                    tx.image(name)  # raises NotFound with its hint
                op = lifecycle.check_start(op_name, image.state, name=name, is_master=image.is_master,
                                           error=image.error)
                claims.check(tx, image, op_name, claimed)
                if check is not None:
                    image = check(tx, image) or image
            except EncompassError as exc:
                results[name] = failed(name, str(exc), exc.exit_code)
                continue
            taken = attrs.evolve(image, state=op.transitional, owner=current_owner(op_name, image.state))
            holding.record(ctx, tx, holding.transition_event(image, op.transitional, f"{op_name} started",
                                                             op_name), events)
            tx.put_image(taken)
            held[name] = holding.Holding(image=taken, operation=op)
    holding.announce(ctx, events)
    return held, images


def _with_lineage(tx: Transaction, images: Iterable[Image]) -> list[Image]:
    """``images`` and their ancestors (parents up the chain, masters): what bodies look up."""
    found: dict[str, Image] = {i.name: i for i in images}
    todo = [n for i in found.values() for n in (i.parent, i.master) if n]
    while todo:
        name = todo.pop()
        if name in found:
            continue
        ancestor = tx.find_image(name, shared=True)  # only read: others may read it at once
        if ancestor is not None:
            found[name] = ancestor
            todo.extend(n for n in (ancestor.parent, ancestor.master) if n)
    return list(found.values())


def _write_back(ctx: Context, finished: list[tuple[holding.Holding, Any]]) -> None:
    """Leave each finished clone in its success state, or back where it was, or in error."""
    events: list = []
    with ctx.store.transaction() as tx:
        for held, result in finished:
            current = tx.find_image(held.image.name)
            if current is None or not holding.owned_by(current, held.image.owner):
                continue  # gone, or taken over by repair: nothing of ours to record
            op = held.operation
            if result.error is None:
                done = holding.released(held.image, state=op.success, error=None)
                message = held.message or f"{op.name} done"
            elif held.dirty:
                done = holding.released(held.image, state="error", error=f"{op.name}: {result.error}")
                message = f"{op.name} failed: {result.error}"
            else:
                previous = current.owner.previous_state if current.owner else "error"
                done = holding.released(current, state=previous)
                message = f"{op.name} failed, nothing was changed: {result.error}"
            holding.record(ctx, tx, holding.transition_event(current, done.state, message, op.name,
                                                             kind="operation"), events)
            tx.put_image(done)
    holding.announce(ctx, events)


def run_many(ctx: Context, names: Sequence[str], op_name: str,
             body: Callable[[holding.Holding, list[Image]], Any], failed: Failed, parallel: int,
             check: Check | None = None, on_done: Callable[[Any], None] | None = None) -> list[Any]:
    """Run ``body(holding, images)`` on every image of ``names``, at most ``parallel`` at once,
    and return the result of each (in the order of ``names``).

    All images are taken in one transaction (``check(tx, image)`` may refuse one) and written
    back in batches. ``body`` returns a result whose ``error`` is None; a body that raises gets
    ``failed(name, reason, exit_code)`` instead, and its image is left in ``error`` if it was changed
    (``holding.dirty``) or back where it was — without stopping the others. ``images`` are
    the images taken and their ancestors, as they were when taken (for lineage lookups
    without the store).
    """
    results: dict[str, Any] = {}
    # Ctrl-C is held back from taking the images until every job is submitted (as clone does).
    interrupt_pending = workers_mod.hold_back_sigint()
    try:
        held, images = _start_all(ctx, names, op_name, check, results, failed)
    except BaseException:
        interrupt_pending()
        raise
    if on_done:
        for result in results.values():
            on_done(result)

    def job(name: str) -> Any:
        return body(held[name], images)

    def write_back(batch: list[workers_mod.Finished]) -> None:
        _flush(ctx, [(held[name], failed(name, error, code) if error is not None else result)
                     for name, result, error, code in batch], results, on_done)

    never_begun = workers_mod.run_jobs(list(held), job, max(1, min(parallel, len(held) or 1)),
                                       write_back, op_name, held_back=interrupt_pending)
    if never_begun is not None:
        # Nothing was done to them (holding.dirty is False): they go back where they were.
        _flush(ctx, [(held[name], failed(name, workers_mod.INTERRUPTED,
                                                           Interrupted.exit_code)) for name in never_begun],
               results, on_done)
        raise Interrupted(f"interrupted: images not finished were put back as they were, or left in "
                          f"'error' when half-done ({op_name} them again)")
    return [results[n] for n in names]


def _flush(ctx, finished, results, on_done) -> None:
    _write_back(ctx, finished)
    for held, result in finished:
        results[held.image.name] = result
        if on_done:
            on_done(result)
    finished.clear()


