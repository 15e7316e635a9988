"""Frozen records returned by the registration hooks: one record type per hook.

A record's ``name`` is what users type (``--pool``'s driver, ``--type`` of an item...). It is
normalized (lowercase, ``_`` → ``-``) and validated when the record is built.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import attrs

from .convert import tuple_of
from .errors import PluginError
from .settings import Setting

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
    """A storage driver: ``factory(section, config)`` returns a
    :class:`~encompass_core.contracts.StorageDriver` for one pool. ``settings`` declares what its
    ``[pools.NAME]`` tables may hold; the core checks them before the factory is called."""

    name: str = attrs.field(converter=_normalize)
    factory: Callable[..., Any]
    description: str = ""
    debian_packages: tuple[str, ...] = ()
    settings: tuple[Setting, ...] = attrs.field(default=(), converter=tuple_of)


@attrs.frozen
class PlatformDriverRecord:
    """A platform driver: ``factory(section, config)`` returns a
    :class:`~encompass_core.contracts.PlatformDriver` for one platform (whose capabilities say
    whether its machines are virtual or physical). ``settings`` declares what its
    ``[platforms.NAME]`` tables may hold."""

    name: str = attrs.field(converter=_normalize)
    factory: Callable[..., Any]
    description: str = ""
    debian_packages: tuple[str, ...] = ()
    settings: tuple[Setting, ...] = attrs.field(default=(), converter=tuple_of)


@attrs.frozen
class CustomizerRecord:
    """A customization item type: ``factory()`` returns an object with apply/revert/validate."""

    name: str = attrs.field(converter=_normalize)
    factory: Callable[..., Any]
    description: str = ""


@attrs.frozen
class VolumeOpenerRecord:
    """A way into a volume's files; lower ``priority`` is tried first. ``factory(**settings)``
    gets the ``[openers.NAME]`` table, checked against ``settings`` first."""

    name: str = attrs.field(converter=_normalize)
    factory: Callable[..., Any]
    priority: int = 100
    description: str = ""
    settings: tuple[Setting, ...] = attrs.field(default=(), converter=tuple_of)


@attrs.frozen
class ItemPresetRecord:
    """A ready-made list of customization items (``master items load MASTER --preset NAME``):
    ``factory(master)`` gets the master :class:`~encompass_core.model.Image` (its hardware
    profile, its volumes) and returns item specifications, mappings with the fields of a
    ``[[item]]`` table (key, type, path, prompt, secret, params...)."""

    name: str = attrs.field(converter=_normalize)
    factory: Callable[..., Any]
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
    max_depth: int  # the longest copy-on-write chain the target pool allows
    source_image: str = ""  # the image the source volume belongs to


@attrs.frozen
class DiscoveryContext:
    """Seeds given to ``encompass_discover_platforms`` (addresses, ranges, hints)."""

    seeds: tuple[str, ...] = ()
    config: Any = None


@attrs.frozen(repr=False)
class LabPeer:
    """A running lab peer (:class:`LabPeerRecord`): the platform or pool that reaches it.

    ``platform``: the ``[platforms.NAME]`` table (``name`` is NAME) of a platform peer;
    ``machines``: the names its platform driver's discovery gives the lab machines that boot
    from the SAN, in order; ``pool``: the ``[pools.NAME]`` table of a storage peer (a SAN or a
    NAS); ``environment``: the variables its ``*_env`` settings read (secrets: set them in the
    environment of whoever uses it, never print them; the repr hides them).
    """

    name: str
    platform: dict[str, Any] = attrs.field(factory=dict)
    machines: tuple[str, ...] = ()
    environment: dict[str, str] = attrs.field(factory=dict)
    pool: dict[str, Any] = attrs.field(factory=dict)

    def __repr__(self) -> str:
        return f"LabPeer({self.name!r}, machines={self.machines!r})"


@attrs.frozen
class LabPeerRecord:
    """A lab peer a plugin can start: the management side of physical lab machines that are QEMU
    guests (``kind="platform"``: a BladeCenter chassis, AMT PCs; :mod:`encompass_core.testing.lab`),
    or a storage server (``kind="san"`` or ``"nas"``: the SMcli simulator over tgt, nfs-ganesha).

    ``start(workdir, san_portal, count)`` is a context manager: it starts the peer (a platform
    peer with ``count`` machines whose firmware boots their LUN 0 from the iSCSI portal
    ``san_portal``), keeps its files in ``workdir``, yields a :class:`LabPeer`, and stops
    everything at the end. A storage peer may keep the calling thread in a network namespace of
    its own for the ``with`` block (what that thread starts then reaches the server too).
    """

    name: str = attrs.field(converter=_normalize)
    start: Callable[..., Any]
    description: str = ""
    kind: str = attrs.field(default="platform",
                            validator=attrs.validators.in_(("platform", "san", "nas")))
