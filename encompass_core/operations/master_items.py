"""Editing the ordered list of customization items of a master: add, remove, move, load.

Every change checks the items (key, type, the type's own validation) before it is stored, and
is an event in the master's history. A master busy in an operation is not edited. Clones keep
a copy of each item they applied, so editing a master never strands their un-customization.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from ..context import Context
from ..customization.items import build_item
from ..errors import Conflict, InvalidInput, NotFound
from ..lifecycle import TRANSITIONAL
from ..model import CustomizationItem, Image
from . import holding


def customizer(ctx: Context, type_name: str, key: str = "") -> Any:
    """The customizer object of item type ``type_name``; NotFound lists the known types."""
    records = ctx.host.customizers()
    record = records.get(type_name)
    if record is None:
        known = ", ".join(sorted(records)) or "none"
        what = f"item '{key}' has " if key else ""
        raise NotFound(f"{what}unknown item type '{type_name}'; types available: {known} "
                       "(plugins add more: encompass plugins)")
    return record.factory()


def check_item(ctx: Context, item: CustomizationItem) -> CustomizationItem:
    """Validate ``item`` with its type; return it."""
    customizer(ctx, item.type, item.key).validate(item)
    if item.default is not None and item.secret:
        raise InvalidInput(f"item '{item.key}' is secret: it cannot have a default (the default is "
                           "stored and shown); leave it out")
    return item


def _edit(ctx: Context, master_name: str, change, message: str) -> Image:
    events: list = []
    with ctx.store.transaction() as tx:
        image = tx.image(master_name)
        if not image.is_master:
            raise InvalidInput(f"'{master_name}' is a clone; items belong to masters (its master is "
                               f"'{image.master}')")
        if image.state in TRANSITIONAL:
            raise Conflict(f"cannot change the items of master '{master_name}': it is busy ({image.state})")
        items = list(image.items)
        items = change(items)
        keys = [i.key for i in items]
        twice = sorted({k for k in keys if keys.count(k) > 1})
        if twice:
            raise Conflict(f"master '{master_name}' would have item key(s) twice: {', '.join(twice)}; "
                           "keys are unique (remove the old one first)")
        changed = attrs.evolve(image, items=tuple(items))
        holding.record(ctx, tx, holding.transition_event(image, image.state, message, "items",
                                                         kind="operation"), events)
        tx.put_image(changed)
    holding.announce(ctx, events)
    return changed


def add_item(ctx: Context, master_name: str, item: CustomizationItem, position: int | None = None) -> Image:
    """Add ``item`` at ``position`` (1-based; default: last)."""
    check_item(ctx, item)

    def change(items):
        at = len(items) if position is None else max(0, min(position - 1, len(items)))
        items.insert(at, item)
        return items

    return _edit(ctx, master_name, change, f"item '{item.key}' ({item.type}) added")


def _index(items: list[CustomizationItem], key: str, master_name: str) -> int:
    for i, item in enumerate(items):
        if item.key == key:
            return i
    known = ", ".join(i.key for i in items) or "none"
    raise NotFound(f"master '{master_name}' has no item '{key}' (items: {known})")


def remove_items(ctx: Context, master_name: str, keys: Sequence[str]) -> Image:
    """Remove the items ``keys``."""
    def change(items):
        for key in keys:
            items.pop(_index(items, key, master_name))
        return items

    return _edit(ctx, master_name, change, f"item(s) removed: {', '.join(keys)}")


def move_item(ctx: Context, master_name: str, key: str, position: int) -> Image:
    """Move item ``key`` to ``position`` (1-based) in the order items are applied."""
    if position < 1:
        raise InvalidInput("positions start at 1")

    def change(items):
        item = items.pop(_index(items, key, master_name))
        items.insert(min(position - 1, len(items)), item)
        return items

    return _edit(ctx, master_name, change, f"item '{key}' moved to position {position}")


def read_items_file(path: Path) -> list[CustomizationItem]:
    """Items from a TOML file: ``[[item]]`` tables with key, type, path, ... and ``[item.params]``."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NotFound(f"no such file: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"{path} is not valid TOML: {exc}") from None
    unknown = set(data) - {"item"}
    tables = data.get("item", [])
    if unknown or not isinstance(tables, list):
        raise InvalidInput(f"{path}: expected [[item]] tables only (found: {', '.join(sorted(data))})")
    return [build_item(t, f"{path}: item {n}") for n, t in enumerate(tables, 1)]


def load_items(ctx: Context, master_name: str, path: Path, append: bool = False) -> Image:
    """Replace (or extend, with ``append``) the master's items by those of a TOML file."""
    new = [check_item(ctx, item) for item in read_items_file(path)]
    return _replace(ctx, master_name, new, append, f"{len(new)} item(s) loaded from {path}")


def _replace(ctx: Context, master_name: str, new: list[CustomizationItem], append: bool,
             message: str) -> Image:
    def change(items):
        return items + new if append else new

    return _edit(ctx, master_name, change, message)


def find_preset(ctx: Context, name: str) -> Any:
    """The :class:`~encompass_core.records.ItemPresetRecord` named ``name``; NotFound lists them."""
    presets = ctx.host.item_presets()
    record = presets.get(name.strip().lower())
    if record is None:
        known = ", ".join(sorted(presets)) or "none (plugins offer them, e.g. encompass-sysprep)"
        raise NotFound(f"no item preset '{name}'; presets available: {known}")
    return record


def preset_items(ctx: Context, master: Image, name: str, volume: int | None = None,
                 partition: int | None = None) -> list[CustomizationItem]:
    """The items preset ``name`` offers for ``master``, on ``volume``/``partition`` when given."""
    record = find_preset(ctx, name)
    items = []
    for number, spec in enumerate(record.factory(master), 1):
        spec = dict(spec)
        if volume is not None:
            spec["volume"] = volume
        if partition is not None:
            spec["partition"] = partition
        items.append(check_item(ctx, build_item(spec, f"preset '{record.name}': item {number}")))
    return items


def load_preset(ctx: Context, master_name: str, name: str, append: bool = False,
                volume: int | None = None, partition: int | None = None) -> Image:
    """Replace (or extend) the master's items by those of the preset ``name`` (a plugin's)."""
    with ctx.store.snapshot() as tx:
        master = tx.image(master_name)
    if not master.is_master:
        raise InvalidInput(f"'{master_name}' is a clone; items belong to masters (its master is "
                           f"'{master.master}')")
    new = preset_items(ctx, master, name, volume, partition)
    return _replace(ctx, master_name, new, append, f"{len(new)} item(s) loaded from preset '{name}'")
