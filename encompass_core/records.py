"""Frozen records returned by the registration hooks: one record type per hook.

A record's ``name`` is what users type (``--pool``'s driver, ``--type`` of an item...). It is
normalized (lowercase, ``_`` → ``-``) and validated when the record is built.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import attrs

from .errors import PluginError

_NAME = re.compile(r"^[a-z][a-z0-9-]{0,31}$")


def _normalize(name: str) -> str:
    norm = str(name).strip().lower().replace("_", "-")
    if not _NAME.match(norm):
        raise PluginError(
            f"invalid registered name {name!r}: use a letter then letters, digits, hyphens"
        )
    return norm


@attrs.frozen
class StorageDriverRecord:
    """A storage driver: ``factory(section, config)`` returns a driver for one pool."""

    name: str = attrs.field(converter=_normalize)
    factory: Callable[..., Any]
    description: str = ""
    debian_packages: tuple[str, ...] = ()


@attrs.frozen
class PlatformDriverRecord:
    """A platform driver: ``factory(section, config)`` returns a driver for one platform."""

    name: str = attrs.field(converter=_normalize)
    factory: Callable[..., Any]
    description: str = ""
    kind: str = "virtual"  # virtual | physical
    debian_packages: tuple[str, ...] = ()


@attrs.frozen
class CustomizerRecord:
    """A customization item type: ``factory()`` returns an object with apply/revert/validate."""

    name: str = attrs.field(converter=_normalize)
    factory: Callable[..., Any]
    description: str = ""


@attrs.frozen
class VolumeOpenerRecord:
    """A way into a volume's files; lower ``priority`` is tried first."""

    name: str = attrs.field(converter=_normalize)
    factory: Callable[..., Any]
    priority: int = 100
    description: str = ""


@attrs.frozen
class CliCommandRecord:
    """An extra click command (or group) added to the ``encompass`` command line."""

    name: str = attrs.field(converter=_normalize)
    command: Any  # click.Command


@attrs.frozen
class CloneRequest:
    """What ``encompass_clone_volume`` is asked to make."""

    image: str  # the new image's name
    index: int  # the volume's index in the image
    mode: str  # cow | full
    max_depth: int


@attrs.frozen
class DiscoveryContext:
    """Seeds given to ``encompass_discover_platforms`` (addresses, ranges, hints)."""

    seeds: tuple[str, ...] = ()
    config: Any = None
