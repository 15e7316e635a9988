"""The bytes of one filesystem inside a volume, as a file the Windows filesystem tools can open.

``ntfs-3g`` takes a whole device or file and no offset; mtools takes ``file@@offset``. A
volume may be a raw image or a qcow2 overlay, whole or one partition of it (MBR or GPT, see
:mod:`.partitions`). :func:`reach` gives a :class:`Region`: a file and the offset of the
filesystem in it, exporting through ``qemu-storage-daemon`` (:class:`~.qcow2.FuseExport`)
only when needed: a qcow2 image is exported as raw; a partition that must start at byte 0
(``exact``) is exported through a ``raw`` node with its offset and size, so nothing outside
the partition can be reached through the file.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import attrs

from encompass_core.customization.access import FileAccess, VolumeRef
from encompass_core.customization.openers.base import CannotOpen, describe_volume
from encompass_core.customization.openers.partitions import find_partition, list_partitions
from encompass_core.customization.openers.qcow2 import FuseExport
from encompass_core.errors import InvalidInput, NotFound

_BOOT_SECTOR = 512


@attrs.define
class Region:
    """A file holding the filesystem at ``offset``; closing stops its export, if any."""

    path: str
    offset: int = 0
    export: FuseExport | None = None

    def close(self) -> None:
        """Stop the export (flushing a qcow2 overlay). Idempotent."""
        export, self.export = self.export, None
        if export is not None:
            export.close()


def boot_sector(path: str, offset: int) -> bytes:
    """The first sector of the filesystem at ``offset`` of ``path`` (shorter when cut off)."""
    with open(path, "rb") as stream:
        stream.seek(offset)
        return stream.read(_BOOT_SECTOR)


def is_ntfs(sector: bytes) -> bool:
    """Whether a boot sector is NTFS's (OEM name ``NTFS    ``)."""
    return len(sector) == _BOOT_SECTOR and sector[3:11] == b"NTFS    "


def is_fat(sector: bytes) -> bool:
    """Whether a boot sector is a FAT12/16/32 one (the type label of either layout)."""
    if len(sector) != _BOOT_SECTOR or sector[510:512] != b"\x55\xaa":
        return False
    return sector[54:59] == b"FAT12" or sector[54:59] == b"FAT16" or sector[82:87] == b"FAT32"


def _raw_node(file_node: str, offset: int, size: int, read_only: bool) -> dict:
    return {"driver": "raw", "node-name": "disk", "file": file_node, "offset": offset, "size": size,
            "read-only": read_only}


def reach(volume: VolumeRef, writable: bool, timeout: float, exact: bool) -> Region:
    """The region of ``volume``'s filesystem (see the module docstring); the caller closes it.

    Raises :class:`~.base.CannotOpen` for formats other than raw and qcow2.
    """
    if volume.format not in ("raw", "qcow2"):
        raise CannotOpen(f"{describe_volume(volume)} is a {volume.format} volume, not a raw or qcow2 image")
    label = describe_volume(volume)
    path = os.path.abspath(volume.path)
    read_only = not writable
    if volume.format == "raw":
        if volume.partition is None:
            return Region(path)
        partition = find_partition(path, volume.partition)
        if not exact:
            return Region(path, partition.offset)
        nodes = [{"driver": "file", "node-name": "file", "filename": path, "read-only": read_only},
                 _raw_node("file", partition.offset, partition.size, read_only)]
        export = FuseExport(path, writable, label, timeout, blockdevs=nodes)
        return Region(export.raw_path, 0, export)
    whole = FuseExport(path, writable and not (exact and volume.partition), label, timeout)
    if volume.partition is None:
        return Region(whole.raw_path, 0, whole)
    try:
        partition = find_partition(whole.raw_path, volume.partition)
    except BaseException:
        whole.close()
        raise
    if not exact:
        return Region(whole.raw_path, partition.offset, whole)
    whole.close()  # it served to read the partition table; the partition alone is exported now
    nodes = [{"driver": "file", "node-name": "file", "filename": path, "read-only": read_only},
             {"driver": "qcow2", "node-name": "image", "file": "file", "read-only": read_only},
             _raw_node("image", partition.offset, partition.size, read_only)]
    export = FuseExport(path, writable, label, timeout, blockdevs=nodes)
    return Region(export.raw_path, 0, export)


def _not_here(volume: VolumeRef, region: Region, recognizes: Callable[[bytes], bool],
              what: str) -> tuple[str, bool]:
    """Why the region holds no ``what`` filesystem, and whether it is a whole disk whose
    partitions do (then the item lacks its partition number, and the message says which)."""
    message = f"{describe_volume(volume)} holds no {what} filesystem"
    if volume.partition is not None or region.offset:
        return message, False
    try:
        holding = [str(p.number) for p in list_partitions(region.path)
                   if recognizes(boot_sector(region.path, p.offset))]
    except (InvalidInput, OSError):
        return message, False
    if not holding:
        return message, False
    return (f"{message} itself, but its partition(s) {', '.join(holding)} do: give the items their "
            f"partition (encompass master items load MASTER --preset NAME --partition {holding[-1]}, "
            "or --partition on items add)"), True


def raw_problem(volume: VolumeRef, recognizes: Callable[[bytes], bool], what: str) -> str | None:
    """For an opener's ``can_open``: why a raw volume holds no ``what`` filesystem where asked,
    or None (also for qcow2 volumes, looked at only once exported, by :func:`open_region`)."""
    if volume.format != "raw":
        return None
    try:
        region = reach(volume, False, 0, exact=False)  # raw and not exact: nothing is exported
    except (NotFound, InvalidInput) as error:
        return str(error)
    if not recognizes(boot_sector(region.path, region.offset)):
        return _not_here(volume, region, recognizes, what)[0]
    return None


def open_region(volume: VolumeRef, writable: bool, timeout: float, exact: bool,
                recognizes: Callable[[bytes], bool], what: str,
                access: Callable[[Region], FileAccess]) -> FileAccess:
    """Reach the volume's filesystem (:func:`reach`), check that it is ``what``, and return
    ``access(region)``; the region is closed again when that fails (:class:`~.base.CannotOpen`
    when it holds another filesystem, so the next opener is tried; InvalidInput when a whole disk
    was asked for whose partitions hold ``what``: the item lacks its partition number)."""
    region = reach(volume, writable, min(timeout, 60.0), exact)
    try:
        if not recognizes(boot_sector(region.path, region.offset)):
            reason, partitioned = _not_here(volume, region, recognizes, what)
            raise (InvalidInput if partitioned else CannotOpen)(reason)
        return access(region)
    except BaseException:
        region.close()
        raise
