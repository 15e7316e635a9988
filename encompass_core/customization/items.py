"""Customization items: the contract of an item type, and building items from user input.

An item type (a *customizer*) is registered through ``encompass_customizers`` as a
:class:`~encompass_core.records.CustomizerRecord` whose ``factory()`` returns an object with:

``needs_value``
    False when the item takes no input (``delete``); True otherwise.
``validate(item) -> None``
    Check the item's definition (path, parameters); raise
    :class:`~encompass_core.errors.InvalidInput` saying what is wrong.
``apply(fs, item, value, clone_name) -> None``
    Make the item's change in the opened volume ``fs`` (a
    :class:`~encompass_core.customization.access.FileAccess`). ``fs`` holds the *un-customized*
    content of the item's files: the core reverts an item before applying a new value.
    Never put ``value`` in an error message: it may be a secret.
``check_value(item, value) -> None`` (optional)
    Raise :class:`~encompass_core.errors.InvalidInput` when ``value`` cannot be applied
    (a malformed address...); called for every new value before the clone is changed at all.
    Never quote a secret item's value in the message.
``revert(fs, item, parent_fs) -> None``
    Undo the change. ``parent_fs`` is the same volume of the nearest ancestor image (a parent
    clone, else the master) that does not have the item applied, opened read-only; None when
    no such image can be reached, then the type restores what it can (see each type).

Customizers reach files only through ``FileAccess``, which confines every path to the volume.

Item keys are 1-64 characters: a lowercase letter, then lowercase letters, digits, ``-``,
``_`` and ``.`` (``hostname``, ``net.eth0-address``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Protocol

import attrs

from ..contracts.values import PLATFORM_CUSTOMIZATION_KEYS
from ..errors import InvalidInput
from ..model import CustomizationItem
from .access import FileAccess
from .openers.resolve import limits_problem

_KEY_RE = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")
_FIELDS = {f.name for f in attrs.fields(CustomizationItem)}


class Customizer(Protocol):
    """What an item type's factory returns (see the module documentation)."""

    needs_value: bool

    def validate(self, item: CustomizationItem) -> None:
        """Raise InvalidInput when the item's definition cannot work."""

    def apply(self, fs: FileAccess, item: CustomizationItem, value: str, clone_name: str) -> None:
        """Make the item's change in ``fs``."""

    def revert(self, fs: FileAccess, item: CustomizationItem, parent_fs: FileAccess | None) -> None:
        """Undo the item's change in ``fs``, from ``parent_fs`` when given."""


def validate_key(key: str) -> str:
    """Return ``key`` if it is a valid item key, else raise :class:`InvalidInput`."""
    if not isinstance(key, str) or not _KEY_RE.match(key):
        raise InvalidInput(
            f"invalid item key {key!r}: use 1-64 characters, a lowercase letter then lowercase "
            "letters, digits, '-', '_' or '.', e.g. 'hostname' or 'net.eth0-address'"
        )
    return key


def parse_params(pairs: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``["k=v", ...]`` (from ``--param``) as a dict; a pair without ``=`` is refused."""
    params = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise InvalidInput(f"--param {pair!r} is not NAME=VALUE, e.g. --param mode=0644")
        params[name.strip()] = value
    return params


def build_item(spec: Mapping[str, Any], where: str = "item") -> CustomizationItem:
    """Build a :class:`CustomizationItem` from a plain mapping (a TOML table, CLI options)."""
    unknown = set(spec) - _FIELDS
    if unknown:
        raise InvalidInput(f"{where}: unknown field(s) {', '.join(sorted(unknown))}; "
                           f"known: {', '.join(sorted(_FIELDS))}")
    for required in ("key", "type", "path"):
        if spec.get(required) in (None, ""):
            raise InvalidInput(f"{where}: '{required}' is required")
    key = validate_key(spec["key"])
    where = f"item '{key}'"
    path = spec["path"]
    if not isinstance(path, str) or not path.startswith("/"):
        raise InvalidInput(f"{where}: path {path!r} must be absolute inside the volume, e.g. /etc/hostname")
    problem = limits_problem(path)
    if problem is not None:
        raise InvalidInput(f"{where}: no volume can hold its path: {problem}; shorten the path")
    volume = spec.get("volume", 0)
    partition = spec.get("partition")
    if not isinstance(volume, int) or isinstance(volume, bool) or volume < 0:
        raise InvalidInput(f"{where}: volume must be a volume index (0, 1, ...), not {volume!r}")
    if partition is not None and (not isinstance(partition, int) or isinstance(partition, bool)
                                  or partition < 1):
        raise InvalidInput(f"{where}: partition must be a partition number from 1, not {partition!r}")
    params = spec.get("params") or {}
    if not isinstance(params, Mapping):
        raise InvalidInput(f"{where}: params must be a table of NAME = VALUE")
    default = spec.get("default")
    for text_field in ("description", "prompt"):
        if not isinstance(spec.get(text_field, ""), str):
            raise InvalidInput(f"{where}: {text_field} must be text")
    for flag in ("secret", "optional"):
        if not isinstance(spec.get(flag, False), bool):
            raise InvalidInput(f"{where}: {flag} must be true or false")
    platform_key = spec.get("platform_key") or None
    if platform_key is not None:
        if platform_key not in PLATFORM_CUSTOMIZATION_KEYS:
            raise InvalidInput(f"{where}: platform_key {platform_key!r} is none of "
                               f"{', '.join(PLATFORM_CUSTOMIZATION_KEYS)}")
        if spec.get("secret"):
            # A platform-side customization keeps its value until deploy: never a secret's.
            raise InvalidInput(f"{where}: a secret item cannot be handed to a platform "
                               "(drop --platform-key or --secret)")
    return CustomizationItem(
        key=key, type=str(spec["type"]).strip().lower().replace("_", "-"), path=path,
        volume=volume, partition=partition, description=spec.get("description", ""),
        prompt=spec.get("prompt", ""), default=None if default is None else str(default),
        secret=spec.get("secret", False), params=dict(params), optional=spec.get("optional", False),
        platform_key=platform_key,
    )


def expand(template: str, value: str, clone_name: str = "") -> str:
    """Put ``value`` (and the clone's name) into a template: ``{value}`` and ``{clone}``.

    Only these two exact tokens of the template are replaced (never tokens inside the value);
    other braces stay as they are, so scripts and files with braces need no escaping.
    """
    return template.replace("{clone}", clone_name).replace("{value}", value)


#: The parameter every item may hold saying when it applies: ``on = "hardware"`` marks an item
#: that depends on the machine's hardware (re-applied when its image moves to other hardware);
#: ``on = "image"`` says it does not (the default, except for the ``kernel`` type).
ON_PARAM = "on"
ON_VALUES = ("hardware", "image")
HARDWARE_DEPENDENT_TYPES = frozenset({"kernel"})


def is_hardware_dependent(item: CustomizationItem) -> bool:
    """Whether ``item`` depends on the hardware its image runs on, so that a migration to
    other hardware applies it again: its params hold ``on = "hardware"``, or its type is
    hardware-dependent by default (``kernel``) and it does not say ``on = "image"``."""
    on = str(item.params.get(ON_PARAM, "")).strip().lower()
    if on:
        return on == "hardware"
    return item.type in HARDWARE_DEPENDENT_TYPES


def check_params(item: CustomizationItem, known: set[str]) -> None:
    """Refuse parameters an item type does not know (a typo would be silently ignored); every
    type knows ``on`` (``hardware`` or ``image``, see :func:`is_hardware_dependent`)."""
    unknown = set(item.params) - known - {ON_PARAM}
    if unknown:
        raise InvalidInput(
            f"item '{item.key}' ({item.type}): unknown parameter(s) {', '.join(sorted(unknown))}; "
            f"known: {', '.join(sorted(known | {ON_PARAM}))}"
        )
    on = str(item.params.get(ON_PARAM, "hardware")).strip().lower()
    if on not in ON_VALUES:
        raise InvalidInput(f"item '{item.key}': on={item.params[ON_PARAM]!r} is not one of "
                           f"{', '.join(ON_VALUES)} (on=hardware: applied again when the image "
                           "moves to other hardware)")
