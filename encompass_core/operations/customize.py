"""Customizing clones (applying their master's items) and un-customizing them, many at once.

Applied state, per clone and item: ``applied[key] = {"type", "fingerprint", "time", "item"}``,
where ``fingerprint`` is an HMAC of the value (:mod:`~encompass_core.customization.fingerprint`)
and ``item`` the item's definition as applied (so a later edit of the master does not strand
it). Inputs of non-secret items are kept in ``inputs[key]``; a secret value is never stored.

Applying is idempotent: an item applied with the same value and definition is left alone;
one applied with another value or definition is first reverted, then applied again, so every
type always works on un-customized content. Reverting restores the files of the nearest
ancestor that does not have the item applied (the parent clone, else the master), opened
read-only; when no ancestor is left, the item's default is applied instead. As that restores
whole files, the other items applied to the same file are applied again (from their stored
inputs, or the values given to this customization; a secret one whose value is not kept and was
not given is reverted too and must be given again).

A clone that other clones read through (copy-on-write) is refused: changing it would change
them. All clones are taken in one transaction (``customizing``/``uncustomizing``, owned by
this process) and written back in batches. A clone that fails after changing something is
left in ``error`` with its reason and the items applied so far; one that failed before any
change goes back to ``ready``. A process killed mid-way leaves its clones to
``encompass repair`` (they go to ``error``; ``customize --force`` then applies every item
again, or ``uncustomize`` takes them back to the parent's files).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from ..context import Context
from ..convert import from_document, to_document
from ..customization.access import FileAccess
from ..customization.fingerprint import Fingerprinter
from ..customization.volumes import close_all, open_image_volume, revert_source
from ..errors import Conflict, InvalidInput, StoreError
from ..model import CustomizationItem, Image, now
from ..store import Transaction
from . import batch, holding, platform_items
from .master_items import customizer
from .shared_reads import SharedReads


@attrs.frozen
class CustomizeResult:
    """What became of one clone: items applied, reverted, left as they were, or the error."""

    name: str
    state: str  # ready | error
    applied: tuple[str, ...] = ()
    reverted: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    error: str | None = None
    exit_code: int = 0  # of the error's class (errors.py) when it failed


def clones_of(ctx: Context, master_name: str) -> list[str]:
    """Every clone derived from ``master_name`` (for ``customize --master``)."""
    with ctx.store.snapshot() as tx:
        if not tx.image(master_name).is_master:
            raise InvalidInput(f"'{master_name}' is not a master")
        return [i.name for i in tx.images(kind="clone", master=master_name)]


def items_of(tx: Transaction, clone: Image) -> tuple[CustomizationItem, ...]:
    """The items of the clone's master (a master is never customized itself)."""
    if clone.is_master:
        raise Conflict(f"cannot customize master '{clone.name}': masters are never customized "
                       f"(clone it first: encompass clone {clone.name} NEW_NAME)")
    master = tx.find_image(clone.master) if clone.master else None
    return master.items if master else ()


def _same_item(record: Mapping[str, Any], item: CustomizationItem) -> bool:
    # Compared as items, not documents: a record made before a field was added still matches.
    try:
        return _applied_item(record, item.key) == item
    except StoreError:
        return False


def needed_inputs(ctx: Context, names: Sequence[str],
                  given: Mapping[str, Mapping[str, str]]) -> dict[str, list[CustomizationItem]]:
    """For each clone, the items still lacking a value (neither given, nor stored, nor — for a
    secret already applied — needing one). ``given`` maps clone name to ``{key: value}``."""
    missing: dict[str, list[CustomizationItem]] = {}
    with ctx.store.snapshot() as tx:
        for name in names:
            clone = tx.image(name)
            items = items_of(tx, clone)
            keys = {i.key for i in items}
            unknown = sorted(set(given.get(name, {})) - keys)
            if unknown:
                raise InvalidInput(f"clone '{name}': no item {', '.join(unknown)} on its master "
                                   f"'{clone.master}' (items: {', '.join(sorted(keys)) or 'none'})")
            lacking = []
            for item in items:
                if not customizer(ctx, item.type, item.key).needs_value:
                    continue
                if item.key in given.get(name, {}):
                    continue
                if not item.secret and item.key in clone.inputs:
                    continue
                record = clone.applied.get(item.key)
                if item.secret and record and _same_item(record, item):
                    continue
                lacking.append(item)
            if lacking:
                missing[name] = lacking
    return missing


class _Volumes:
    """The volumes opened for one clone's work, each once; all closed (flushed) at the end."""

    def __init__(self, ctx: Context, shared: SharedReads | None = None) -> None:
        self.ctx = ctx
        self.opened: dict[tuple[str, int, int | None], FileAccess] = {}
        self.shared = shared  # ancestors' volumes, read-only, opened once for every clone

    def get(self, image: Image, index: int, partition: int | None, writable: bool) -> FileAccess:
        if not writable and self.shared is not None:
            return self.shared.get(image, index, partition)
        key = (image.name, index, partition)
        if key not in self.opened:
            # One partition of a volume open at a time: two openers must not write one file.
            for other in [k for k in self.opened if k[:2] == key[:2]]:
                self.opened.pop(other).close()
            self.opened[key] = open_image_volume(self.ctx, image, index, partition, writable)
        return self.opened[key]

    def close(self) -> None:
        opened, self.opened = list(self.opened.values()), {}
        close_all(reversed(opened))


class _Images:
    """The images as they were when the clones were taken: lineage lookups without the store."""

    def __init__(self, images: Sequence[Image]) -> None:
        self.by_name = {i.name: i for i in images}

    def find_image(self, name: str) -> Image | None:
        return self.by_name.get(name)


class _Work:
    """One clone's customization or un-customization, under its hold."""

    def __init__(self, ctx: Context, held: holding.Holding, images: _Images,
                 shared: SharedReads | None = None) -> None:
        self.ctx = ctx
        self.held = held
        self.images = images
        self.name = held.image.name
        self.volumes = _Volumes(ctx, shared)
        self.done = {"applied": [], "reverted": [], "unchanged": []}
        self.given: Mapping[str, str] = {}  # the values given to this customization, secrets too

    @property
    def image(self) -> Image:
        return self.held.image

    def fs(self, item: CustomizationItem) -> FileAccess:
        return self.volumes.get(self.image, item.volume, item.partition, writable=True)

    def revert(self, item: CustomizationItem, reapply_others: bool = True) -> None:
        """Undo ``item`` (as it was applied) in the clone's volume; then apply again the other
        items on the same file, unless everything is being reverted."""
        if platform_items.is_platform_record(self.image.applied.get(item.key, {})):
            self._record(item.key, None)  # nothing was written in the files: forget it
            self.done["reverted"].append(item.key)
            return
        kind = customizer(self.ctx, item.type, item.key)
        source = revert_source(self.images, self.image, item.key)
        parent_fs = None
        if source is not None and any(v.index == item.volume for v in source.volumes):
            parent_fs = self.volumes.get(source, item.volume, item.partition, writable=False)
        fs = self.fs(item)
        self.held.dirty = True  # from here on the volume may have changed
        if parent_fs is None and item.default is not None and kind.needs_value:
            kind.apply(fs, item, item.default, self.name)
        else:
            kind.revert(fs, item, parent_fs)
        self._record(item.key, None)
        self.done["reverted"].append(item.key)
        if reapply_others:
            self._reapply_sharing(item)

    def _reapply_sharing(self, reverted: CustomizationItem) -> None:
        """Reverting restored the whole file: apply again the other items on that same file
        (with their stored inputs, else the value given now); a secret one whose value is not
        kept and was not given now is reverted too. (An item given a new value now is applied
        again later with it: its fingerprint differs from the one recorded.)"""
        where = (reverted.volume, reverted.partition, reverted.path)
        for key, record in list(self.image.applied.items()):
            item = _applied_item(record, key)
            if platform_items.is_platform_record(record) or (
                    item.volume, item.partition, item.path) != where:
                continue
            kind = customizer(self.ctx, item.type, item.key)
            if not kind.needs_value or key in self.image.inputs or key in self.given:
                value = self.image.inputs[key] if key in self.image.inputs else self.given.get(key, "")
                kind.apply(self.fs(item), item, value, self.name)
            else:
                self._record(key, None)
                self.done["reverted"].append(key)

    def apply(self, item: CustomizationItem, value: str, fingerprint: str,
              by_platform: bool = False) -> None:
        """Apply ``item`` in the clone's files, or (``by_platform``) leave it to the platform
        the clone is deployed on (:mod:`.platform_items`)."""
        if by_platform:
            self._record(item.key, platform_items.record(item, fingerprint), input_value=value)
            self.done["applied"].append(item.key)
            return
        kind = customizer(self.ctx, item.type, item.key)
        fs = self.fs(item)
        self.held.dirty = True  # from here on the volume may have changed
        kind.apply(fs, item, value, self.name)
        self._record(item.key, {"type": item.type, "fingerprint": fingerprint, "time": now(),
                                "item": to_document(item)},
                     input_value=None if item.secret or not kind.needs_value else value)
        self.done["applied"].append(item.key)

    def _record(self, key: str, applied: dict | None, input_value: str | None = None) -> None:
        self.held.dirty = True
        state = dict(self.image.applied)
        inputs = dict(self.image.inputs)
        if applied is None:
            state.pop(key, None)
            inputs.pop(key, None)
        else:
            state[key] = applied
            if input_value is not None:
                inputs[key] = input_value
        self.held.image = attrs.evolve(self.image, applied=state, inputs=inputs)


def _applied_item(record: Mapping[str, Any], key: str) -> CustomizationItem:
    return from_document(CustomizationItem, record["item"], f"applied item '{key}'")


def _customize_body(ctx: Context, work: _Work, values: Mapping[str, str],
                    fingerprint: Fingerprinter, force: bool) -> CustomizeResult:
    """Apply the master's items to the held clone with ``values`` (and its stored inputs)."""
    held, name = work.held, work.name
    work.given = values
    try:
        items = items_of(work.images, held.image)
        for item in items:  # every definition checked before anything changes (the new values
            customizer(ctx, item.type, item.key).validate(item)  # were: check_values, up front)
        platform_side = platform_items.by_platform(items)
        for item in items:
            kind = customizer(ctx, item.type, item.key)
            record = held.image.applied.get(item.key)
            if not kind.needs_value:
                value = ""
            elif item.key in values:
                value = values[item.key]
            elif not item.secret and item.key in held.image.inputs:
                value = held.image.inputs[item.key]
            else:
                value = None  # a secret applied before (needed_inputs checked the rest)
            print_ = fingerprint(value, item.key) if value is not None else None
            if record and _same_item(record, item) and not force and (
                    print_ is None or record.get("fingerprint") == print_):
                work.done["unchanged"].append(item.key)
                continue
            if value is None:
                # Its value is not stored: its definition changed since it was applied, or
                # reverting another item on its file undid it (_reapply_sharing).
                raise InvalidInput(f"clone '{name}': no value for secret item '{item.key}' (its "
                                   "definition changed, or another item on its file was applied "
                                   f"again); give it again: --set {item.key}=VALUE")
            if record:
                work.revert(_applied_item(record, item.key))
                work.done["reverted"].remove(item.key)
            work.apply(item, value, print_, by_platform=platform_side)
    finally:
        work.volumes.close()
    done = work.done
    held.message = ("customized: " + (f"applied {', '.join(done['applied'])}" if done["applied"]
                                      else "nothing to change")
                    + (" (by the platform, at deploy)" if platform_side and done["applied"] else "")
                    + (f"; unchanged {', '.join(done['unchanged'])}" if done["unchanged"] else ""))
    return CustomizeResult(name, "ready", tuple(done["applied"]), (), tuple(done["unchanged"]))


def _uncustomize_body(ctx: Context, work: _Work, keys: Sequence[str] | None) -> CustomizeResult:
    """Revert the items ``keys`` (default: every applied item, last applied first)."""
    held, name = work.held, work.name
    applied = held.image.applied
    if keys:
        unknown = [k for k in keys if k not in applied]
        if unknown:
            raise InvalidInput(f"clone '{name}' has no applied item {', '.join(unknown)} "
                               f"(applied: {', '.join(applied) or 'none'})")
    todo = list(keys) if keys else list(reversed(list(applied)))
    try:
        for key in todo:
            if key in work.image.applied:  # not reverted already with another on its file
                work.revert(_applied_item(applied[key], key), reapply_others=bool(keys))
    finally:
        work.volumes.close()
    held.message = (f"un-customized: reverted {', '.join(todo)}" if todo
                    else "un-customized: nothing was applied")
    return CustomizeResult(name, "ready", reverted=tuple(work.done["reverted"]))


def _refuse_readers(tx: Transaction, image: Image) -> None:
    readers = [o.name for o in tx.dependents(image.name)
               if any(v.backing and v.backing[0] == image.name for v in o.reading_volumes)]
    if readers:
        shown = ", ".join(readers[:5]) + (f" and {len(readers) - 5} more" if len(readers) > 5 else "")
        raise Conflict(
            f"cannot change clone '{image.name}': {len(readers)} clone(s) read through it ({shown}) "
            f"and would change too. Make them independent first: encompass image flatten {readers[0]}"
        )


def check_values(ctx: Context, names: Sequence[str], values: Mapping[str, Mapping[str, str]]) -> None:
    """Ask each item type that can (``check_value``) whether the given values fit, before any
    clone is touched: a bad value is one line, and no clone is left half-customized."""
    with ctx.store.snapshot() as tx:
        for name in names:
            given = values.get(name, {})
            if not given:
                continue
            for item in items_of(tx, tx.image(name)):
                check = getattr(customizer(ctx, item.type, item.key), "check_value", None)
                if check is not None and item.key in given:
                    check(item, given[item.key])


def customize_images(ctx: Context, names: Sequence[str], values: Mapping[str, Mapping[str, str]],
                     parallel: int | None = None, on_done=None, force: bool = False,
                     ) -> list[CustomizeResult]:
    """Customize every clone of ``names``; ``values`` maps a clone's name to ``{key: value}``.

    Missing inputs are an error naming them, before any clone is touched.
    """
    names = _unique(names)
    missing = needed_inputs(ctx, names, values)
    if missing:
        lines = "; ".join(f"{n}: {', '.join(i.key for i in items)}" for n, items in missing.items())
        raise InvalidInput(f"missing input(s) — {lines}. Give them with --set KEY=VALUE or "
                           "--values FILE, or answer prompts with --interactive")
    check_values(ctx, names, values)
    fingerprint = Fingerprinter(ctx.home)
    parallel = parallel or int(ctx.config.defaults.get("parallel", 4))
    shared = SharedReads(ctx)
    def body(held: holding.Holding, images: list[Image]) -> CustomizeResult:
        work = _Work(ctx, held, _Images(images), shared)
        return _customize_body(ctx, work, values.get(work.name, {}), fingerprint, force)

    with contextlib.closing(shared):
        return batch.run_many(ctx, names, "customize", body, _failed, parallel, _refuse_readers,
                              on_done)


def uncustomize_images(ctx: Context, names: Sequence[str], keys: Sequence[str] | None = None,
                       parallel: int | None = None, on_done=None) -> list[CustomizeResult]:
    """Un-customize every clone of ``names`` (only items ``keys`` when given)."""
    names = _unique(names)
    parallel = parallel or int(ctx.config.defaults.get("parallel", 4))
    shared = SharedReads(ctx)
    def body(held: holding.Holding, images: list[Image]) -> CustomizeResult:
        return _uncustomize_body(ctx, _Work(ctx, held, _Images(images), shared), keys)

    with contextlib.closing(shared):
        return batch.run_many(ctx, names, "uncustomize", body, _failed, parallel, _refuse_readers,
                              on_done)


def apply_pending_in_files(ctx: Context, held: holding.Holding) -> list[str]:
    """Apply in the files of the held clone the items left to a platform that turns out not to
    customize (deploy on it): they become ordinary applied records. Returns their keys."""
    work = _Work(ctx, held, _Images([]))
    try:
        for key, record in platform_items.pending(held.image).items():
            work.apply(_applied_item(record, key), held.image.inputs.get(key, ""), record["fingerprint"])
    finally:
        work.volumes.close()
    return work.done["applied"]


def _failed(name: str, reason: str, exit_code: int) -> CustomizeResult:
    return CustomizeResult(name, "error", error=reason, exit_code=exit_code)


def _unique(names: Sequence[str]) -> list[str]:
    if not names:
        raise InvalidInput("give at least one clone (or --master MASTER for all its clones)")
    return list(dict.fromkeys(names))


def reapply_for_machine(ctx: Context, held: holding.Holding, items: Sequence[CustomizationItem],
                        values: Mapping[str, str], facts: Mapping[str, str]) -> tuple[str, ...]:
    """Apply ``items`` again on the held clone for another machine (migration): each one's value
    is ``values[key]`` or its stored input, with ``{machine}``, ``{platform}`` and ``{driver}``
    replaced by ``facts``; what was applied before is reverted first. Returns the keys applied.

    Refuses, before changing anything, an item whose value is not known (a secret one: give it
    again with --set KEY=VALUE).
    """
    image = held.image
    chosen = []
    for item in items:
        kind = customizer(ctx, item.type, item.key)
        kind.validate(item)
        value = values.get(item.key, image.inputs.get(item.key)) if kind.needs_value else ""
        if value is None:
            raise InvalidInput(f"clone '{image.name}': item '{item.key}' depends on the hardware and "
                               f"its value is not stored (secret); give it: --set {item.key}=VALUE")
        chosen.append((item, value))
    work = _Work(ctx, held, _Images(_lineage(ctx, image)))
    fingerprint = Fingerprinter(ctx.home)
    try:
        for item, value in chosen:
            record = work.image.applied.get(item.key)
            if record:
                work.revert(_applied_item(record, item.key), reapply_others=False)
            # The machine's facts go into the volume; the input and its fingerprint stay the
            # template, so the next migration expands it again and customize sees no change.
            written = value
            for token, fact in facts.items():
                written = written.replace("{" + token + "}", fact)
            work.apply(item, written, fingerprint(value, item.key))
            if item.key in work.image.inputs:
                work.held.image = attrs.evolve(work.image, inputs={**work.image.inputs, item.key: value})
    finally:
        work.volumes.close()
    return tuple(item.key for item, _ in chosen)


def _lineage(ctx: Context, image: Image) -> list[Image]:
    """The image, its ancestors and its master (what reverting an item reads from)."""
    found = [image]
    with ctx.store.snapshot() as tx:
        name = image.parent
        while name and name not in {i.name for i in found}:
            ancestor = tx.find_image(name)
            if ancestor is None:
                break
            found.append(ancestor)
            name = ancestor.parent
        if image.master and image.master not in {i.name for i in found}:
            master = tx.find_image(image.master)
            found += [master] if master else []
    return found
