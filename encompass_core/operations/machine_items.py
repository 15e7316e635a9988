"""Hardware-dependent items written for the machine a clone runs on.

An item with ``on = "hardware"`` (or of a hardware-dependent type, such as ``kernel``) may name
the machine in its value: ``{machine}``, ``{platform}`` and ``{driver}``. ``deploy`` fills those
in for the machine it deploys on (items whose value names none of them are left as customize
wrote them); ``migrate`` applies every hardware-dependent item again for its target, since the
hardware changed even when the value did not. The stored input keeps the placeholders, so the
next deploy or migration fills them in again and ``customize`` sees no change.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..context import Context
from ..customization.items import is_hardware_dependent
from ..model import CustomizationItem, Image, Machine
from . import holding

#: The placeholders a hardware-dependent item's value may hold.
TOKENS = ("machine", "platform", "driver")


def facts(machine: Machine) -> dict[str, str]:
    """What each placeholder stands for on ``machine``."""
    return {"machine": machine.name, "platform": machine.platform,
            "driver": str(machine.extra.get("driver", machine.platform))}


def names_the_machine(value: str | None) -> bool:
    """Whether an item's value holds one of the placeholders."""
    return bool(value) and any("{" + token + "}" in value for token in TOKENS)


def hardware_items(ctx: Context, image: Image, naming_only: bool = False) -> list[CustomizationItem]:
    """The clone's hardware-dependent items (with ``naming_only``, those whose stored value
    names the machine)."""
    from .customize import items_of

    with ctx.store.snapshot() as tx:
        items = [i for i in items_of(tx, image) if is_hardware_dependent(i)]
    if naming_only:
        items = [i for i in items if names_the_machine(image.inputs.get(i.key))]
    return items


def apply_for(ctx: Context, held: holding.Holding, machine: Machine, values: Mapping[str, str] | None = None,
              naming_only: bool = False) -> tuple[str, ...]:
    """Write the held clone's hardware-dependent items again for ``machine`` (see the module's
    text); the keys written, none if there is nothing to write."""
    from .customize import reapply_for_machine

    items = hardware_items(ctx, held.image, naming_only)
    if not items:
        return ()
    held.dirty = True
    return reapply_for_machine(ctx, held, items, values or {}, facts(machine))
