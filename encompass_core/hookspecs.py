"""The plugin contract: every hook an Encompass plugin may implement.

Plugins are the entry points of the group ``encompass.plugins`` (found and imported by
:mod:`encompass_core.plugins`); pluggy calls their hooks. Built-in drivers register through
these very hooks.
Implement a hook with ``@encompass_core.hookimpl``; see ``docs/hooks.md`` for examples.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from .contracts import CloneProgress
    from .model import Event, Volume
    from .records import (
        CliCommandRecord,
        CloneRequest,
        CustomizerRecord,
        DiscoveryContext,
        ItemPresetRecord,
        LabPeerRecord,
        PlatformDriverRecord,
        StorageDriverRecord,
        VolumeOpenerRecord,
    )

hookspec = pluggy.HookspecMarker("encompass")

# ---------------------------------------------------------------------------------------------
# Registration hooks: return records naming a driver and its factory.
# ---------------------------------------------------------------------------------------------


@hookspec
def encompass_storage_drivers() -> Iterable[StorageDriverRecord]:
    """Register storage drivers (pools).

    A driver reached through its factory, given the pool's configuration section, discovers
    volumes, creates and deletes them, clones them natively, reads and writes them as streams,
    and attaches them to machines (LUN mapping, NFS path, datastore path) and detaches them.

    :return: storage driver records; two with the same name are an error naming both plugins.
    """


@hookspec
def encompass_platform_drivers() -> Iterable[PlatformDriverRecord]:
    """Register platform drivers (machines).

    A driver discovers machines, powers them, deploys an image's attached volumes on one
    (defines a VM, sets boot order or boot-from-SAN), undeploys, creates and destroys virtual
    machines, and migrates.

    :return: platform driver records; two with the same name are an error naming both plugins.
    """


@hookspec
def encompass_customizers() -> Iterable[CustomizerRecord]:
    """Register customization item types (``file``, ``regexp``, ``sysprep`` ...).

    Each type applies an item's value to a volume, reverts it (un-customize), and validates an
    item's definition.

    :return: customizer records; two with the same name are an error naming both plugins.
    """


@hookspec
def encompass_volume_openers() -> Iterable[VolumeOpenerRecord]:
    """Register ways to reach the files inside a volume.

    Examples: a directory tree, an ext filesystem image without mounting, NTFS, libguestfs,
    a loop mount when privileged. Openers are tried by ascending priority.

    :return: volume opener records.
    """


@hookspec
def encompass_item_presets() -> Iterable[ItemPresetRecord]:
    """Offer ready-made lists of customization items (``master items load --preset NAME``).

    Example: the ``windows`` preset of the sysprep plugin (computer name, administrator
    password, domain join, static address...), so a master is made customizable in one command.

    :return: item preset records, each with ``factory(master)`` returning item specifications
        (mappings with the fields of an ``[[item]]`` table); two with the same name are an error
        naming both plugins.
    """


@hookspec
def encompass_cli_commands() -> Iterable[CliCommandRecord]:
    """Add commands to the ``encompass`` command line.

    :return: records each holding a click command or group; a name clashing with a built-in
        command or another plugin's is an error naming both.
    """


@hookspec
def encompass_lab_peers() -> Iterable[LabPeerRecord]:
    """Register lab peers: the management side of physical lab machines that are QEMU guests
    (``kind="platform"``), or storage servers of the lab (``kind="san"`` or ``"nas"``).

    ``encompass demo --physical`` (and plugin tests) start a platform peer to deploy clones on
    "physical" machines that really boot from the SAN; ``encompass demo --pool san|nas`` start a
    storage peer to keep the clones on it; the core never imports the plugin.

    :return: :class:`~encompass_core.records.LabPeerRecord` records; ``start(workdir,
        san_portal, count)`` is a context manager yielding a
        :class:`~encompass_core.records.LabPeer` (its platform table and machine names, or
        its pool table, and the environment its secrets are read from).
    """


# ---------------------------------------------------------------------------------------------
# Action and decision hooks.
# ---------------------------------------------------------------------------------------------


@hookspec
def encompass_discover_platforms(context: DiscoveryContext) -> Iterable[dict[str, Any]]:
    """Find platforms themselves (SLP, probing) from minimal seeds.

    :param context: the seeds (addresses, ranges) and the configuration.
    :return: proposed ``[platforms.NAME]`` tables (dicts with at least ``name`` and ``driver``).
    """


@hookspec(firstresult=True)
def encompass_clone_volume(source: Volume, target_pool: Any, request: CloneRequest,
                           progress: CloneProgress) -> Volume | None:
    """Clone one volume natively (FlashCopy, reflink, qcow2 overlay, server-side copy).

    Stops at first non-None result. This is the core's one way to clone a volume: the core's
    own implementation, tried last, asks the target pool's driver
    (``StorageDriver.clone_volume``), so a plugin implements this hook only to clone between
    pools of different drivers (a copy offloaded from one vendor's array to another's). When
    none answers, the core copies the volume through the pools' ``expose`` and
    ``write_volume`` (full clones only).

    :param source: the volume to clone.
    :param target_pool: the pool (``encompass_core.context.Pool``: ``name``, ``section``,
        ``driver``, ``resolve(name)``) the clone goes to.
    :param request: the new image's name, the volume index, the mode (``cow``/``full``), the
        maximum copy-on-write chain depth and the source image's name.
    :param progress: report bytes done (``advance``) and long storage-side jobs started
        (``started_job``, recorded so ``encompass repair`` finds them).
    :return: the new volume, or None to let another plugin or the core do it.
    """


@hookspec
def encompass_image_event(event: Event) -> None:
    """Observe every state change and operation result, for audit and integration.

    Called after the event is stored. An exception raised here is reported and ignored.

    :param event: the event, as stored in the image's history.
    """
