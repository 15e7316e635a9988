"""The built-in volume openers and :func:`open_volume`, which picks one for a volume.

========  ==========  =====================================================================
priority  name        reaches
========  ==========  =====================================================================
10        dirtree     directory trees (format ``dir``)
20        loop        raw images, any filesystem, by loop mount: root only, when allowed
30        extfs       ext2/3/4 in raw images (whole or a partition), through debugfs
40        qcow2-fuse  ext2/3/4 in qcow2 images, exported by qemu-storage-daemon over FUSE
50        ntfs        NTFS in raw or qcow2 images, mounted by ntfs-3g (FUSE, root only)
55        fat         FAT12/16/32 in raw or qcow2 images, through mtools (no mount)
90        guestfs     any filesystem libguestfs knows, in raw or qcow2 images (slow start)
========  ==========  =====================================================================

Lower priorities are tried first (as ``VolumeOpenerRecord.priority``). All of them resolve
paths with the one confinement rule of :mod:`.resolve`; ntfs and fat look names up regardless of
case, as Windows does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from encompass_core.customization.access import FileAccess, VolumeOpener, VolumeRef
from encompass_core.customization.openers.base import CannotOpen, describe_volume
from encompass_core.customization.openers.dirtree import DirTreeOpener
from encompass_core.customization.openers.extfs import ExtFsOpener
from encompass_core.customization.openers.fat import FatOpener
from encompass_core.customization.openers.guestfs import GuestfsOpener
from encompass_core.customization.openers.loop import LoopOpener
from encompass_core.customization.openers.ntfs import NtfsOpener
from encompass_core.customization.openers.qcow2 import Qcow2Opener
from encompass_core.errors import NotFound

#: ``(name, factory, priority)`` of each built-in opener, for ``encompass_volume_openers``.
BUILTIN_OPENERS: list[tuple[str, Callable[..., VolumeOpener], int]] = [
    ("dirtree", DirTreeOpener, 10),
    ("loop", LoopOpener, 20),
    ("extfs", ExtFsOpener, 30),
    ("qcow2-fuse", Qcow2Opener, 40),
    ("ntfs", NtfsOpener, 50),
    ("fat", FatOpener, 55),
    ("guestfs", GuestfsOpener, 90),
]


def builtin_openers() -> list[VolumeOpener]:
    """One instance of each built-in opener with default settings, in priority order."""
    return [factory() for _, factory, _ in sorted(BUILTIN_OPENERS, key=lambda row: row[2])]


def open_volume(
    volume: VolumeRef, writable: bool, openers: Iterable[VolumeOpener] | None = None
) -> FileAccess:
    """Open ``volume`` with the first opener (in the order given) that can open it.

    ``openers`` defaults to :func:`builtin_openers`. An opener whose ``can_open`` gives a
    reason is skipped; one whose ``open`` raises :class:`~.base.CannotOpen` is skipped too.
    When none can, :class:`~encompass_core.errors.NotFound` lists every opener's reason.
    The result is a context manager: ``with open_volume(volume, True) as fs: ...``.
    """
    reasons = []
    for opener in builtin_openers() if openers is None else openers:
        reason = opener.can_open(volume)
        if reason is None:
            try:
                return opener.open(volume, writable)
            except CannotOpen as error:
                reason = str(error)
        reasons.append(f"{opener.name}: {reason}")
    raise NotFound(
        f"no volume opener can open {describe_volume(volume)} ({volume.format}): "
        + "; ".join(reasons)
        + ". Install what is missing, or check the volume's format and partition"
    )


__all__ = [
    "BUILTIN_OPENERS",
    "CannotOpen",
    "DirTreeOpener",
    "ExtFsOpener",
    "FatOpener",
    "GuestfsOpener",
    "LoopOpener",
    "NtfsOpener",
    "Qcow2Opener",
    "builtin_openers",
    "open_volume",
]
