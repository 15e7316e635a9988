"""Items a platform applies itself: a hostname and addresses handed to the machine's platform
(a vSphere customization spec) instead of being written into the clone's files.

The rule, one line: **a clone whose master's items all carry a** ``platform_key`` **is
customized by the platform it is deployed on, when that platform declares** ``customize``;
**otherwise it is customized in its files**, as any other clone.

- ``customize`` does not touch such a clone's files: each item is recorded as applied
  ``by: "platform"`` with no ``machine`` yet (pending), its input kept (such an item is never
  secret).
- ``deploy`` on a platform declaring ``customize`` hands ``{platform_key: value}`` to
  ``PlatformDriver.customize`` once the volumes are attached and before the machine boots; the
  records then name the machine. On any other platform the core first applies the pending
  items in the clone's files, as ``customize`` would have; they become ordinary records.
- Un-customizing such an item forgets it (nothing was written in the files); what a guest
  received already stays in it until it is customized again.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from ..convert import from_document, to_document
from ..model import CustomizationItem, Image, now

#: ``applied[key]["by"]`` of an item the platform applies.
BY_PLATFORM = "platform"


def by_platform(items: Sequence[CustomizationItem]) -> bool:
    """Whether a clone with these (its master's) items is customized by its platform."""
    return bool(items) and all(item.platform_key for item in items)


def is_platform_record(record: Mapping[str, Any]) -> bool:
    """Whether an applied record is one the platform applies (pending or done)."""
    return record.get("by") == BY_PLATFORM


def record(item: CustomizationItem, fingerprint: str) -> dict[str, Any]:
    """The applied record of an item left to the platform (pending: no machine yet)."""
    return {"type": item.type, "fingerprint": fingerprint, "time": now(),
            "item": to_document(item), "by": BY_PLATFORM, "machine": None}


def pending(image: Image) -> dict[str, dict[str, Any]]:
    """The clone's items waiting for a platform, by key."""
    return {key: dict(found) for key, found in image.applied.items()
            if is_platform_record(found) and not found.get("machine")}


def item_of(found: Mapping[str, Any], key: str) -> CustomizationItem:
    """The item as it was when recorded."""
    return from_document(CustomizationItem, found["item"], f"applied item '{key}'")


def spec(image: Image, records: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """What ``PlatformDriver.customize`` receives: ``{platform_key: value}`` (``dns``: a list,
    from addresses separated by commas or spaces)."""
    result: dict[str, Any] = {}
    for key, found in records.items():
        name = item_of(found, key).platform_key
        value = image.inputs.get(key, "")
        result[name] = [a for a in re.split(r"[,\s]+", value) if a] if name == "dns" else value
    return result


def mark_applied(image: Image, records: Mapping[str, Mapping[str, Any]], machine: str) -> Image:
    """The clone once its platform took the items: each record names the machine."""
    applied = dict(image.applied)
    for key, found in records.items():
        applied[key] = {**found, "machine": machine, "time": now()}
    return attrs.evolve(image, applied=applied)
