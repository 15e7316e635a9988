"""What the core expects of the drivers that plugins register.

A storage driver serves one configured pool, a platform driver one configured platform;
both are built by their record's ``factory(section, config)``. The core's operations reach
pools and platforms only through these methods.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import attrs

from .customization.access import VolumeRef
from .model import Image, Machine, Volume

Progress = Callable[[int], None]  # called with bytes done since the last call


@attrs.frozen
class Attachment:
    """How a machine sees an attached volume (what a platform driver puts in its definition)."""

    index: int
    kind: str  # file | dir | block | nfs | iscsi | datastore
    address: str  # a path, a LUN, an NFS export, a datastore path
    format: str = "raw"  # raw | qcow2 | dir
    readonly: bool = False
    details: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class DiscoveredVolume:
    """A volume a pool really holds, with the image it seems to belong to."""

    image: str | None
    volume: Volume
    backing: str | None = None  # what a copy-on-write volume reads through, as the pool says


class StorageDriver(Protocol):
    """One pool's driver."""

    pool: str
    concurrency: int

    def import_volume(self, image: str, index: int, source: Path, progress: Progress | None = None) -> Volume:
        """Copy a file or directory tree into the pool as volume ``index`` of ``image``."""

    def clone_volume(self, source: Volume, image: str, index: int, mode: str, max_depth: int) -> Volume:
        """Clone ``source`` (of this or another pool of the same driver) natively."""

    def flatten_volume(self, volume: Volume) -> Volume:
        """Make a copy-on-write volume independent of its backing chain."""

    def delete_volume(self, volume: Volume) -> None:
        """Remove the volume; a missing one is not an error."""

    def open_read(self, volume: Volume) -> BinaryIO:
        """The volume's bytes, as a stream (raw volumes)."""

    def write_volume(self, image: str, index: int, stream: BinaryIO, size: int, format: str) -> Volume:
        """Create a volume from a stream (the core's copy when no native clone answers)."""

    def volume_ref(self, volume: Volume) -> VolumeRef:
        """Where the utility server reaches the volume's files (for customization)."""

    def attach(self, volume: Volume, machine: Machine | None) -> Attachment:
        """Make the volume reachable by a machine; say how the machine sees it."""

    def detach(self, volume: Volume, machine: Machine | None) -> None:
        """Undo :meth:`attach`."""

    def discover(self) -> list[DiscoveredVolume]:
        """The volumes the pool really holds."""


class PlatformDriver(Protocol):
    """One platform's driver (a hypervisor, a chassis, a set of AMT PCs)."""

    platform: str
    kind: str  # virtual | physical

    def discover(self) -> list[Machine]:
        """The machines the platform really has."""

    def power(self, machine: Machine, action: str) -> Machine:
        """``on``, ``off`` or ``reset``; return the machine with its new power state."""

    def create_machine(self, name: str, image: Image) -> Machine:
        """Create a virtual machine fitting the image's hardware profile."""

    def destroy_machine(self, machine: Machine) -> None:
        """Remove a virtual machine's definition."""

    def deploy(self, machine: Machine, image: Image, attachments: list[Attachment]) -> Machine:
        """Point the machine at the attached volumes and boot it."""

    def undeploy(self, machine: Machine, image: Image) -> Machine:
        """Power the machine off and remove the volumes from its definition."""

    def console_log(self, machine: Machine) -> Path | None:
        """Where the machine's console output is kept, if anywhere."""

    # Optional: ``shutdown()`` stops what the driver started for itself (a private daemon);
    # the core calls it when it is done with the platform for good (``encompass demo``).
