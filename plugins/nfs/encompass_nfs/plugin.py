"""Hook implementations: the ``nfs`` storage driver. Nothing here imports libnfs, so
``encompass plugins`` works without it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from encompass_core import hookimpl
from encompass_core.records import LabPeerRecord, StorageDriverRecord

#: The edition of the driver contract this plugin is written for (encompass_core.contracts).
CONTRACT_EDITION = 2

DEBIAN_PACKAGES = ("libnfs13", "qemu-utils", "qemu-block-extra", "qemu-system-common", "fuse3")


def _lab_nas(*args: Any, **kwargs: Any) -> Any:
    from .lab_peer import lab_nas

    return lab_nas(*args, **kwargs)


class NfsPlugin:
    """NAS pools: disk files and directory trees on an NFS export."""

    @hookimpl
    def encompass_storage_drivers(self) -> Iterator[StorageDriverRecord]:
        # Imported when storage drivers are asked for, not when plugins load: the driver brings
        # the core's copy helpers and volume openers, which commands that use no pool (--help,
        # machine commands, plugin commands) should not import.
        from .driver import SETTINGS, NfsStorageDriver

        yield StorageDriverRecord(
            name="nfs",
            factory=NfsStorageDriver,
            description="disk files (raw, qcow2) and directory trees on an NFS export "
                        "(url = \"nfs://HOST/EXPORT\" through libnfs, or path = a mount of it)",
            debian_packages=DEBIAN_PACKAGES,
            settings=SETTINGS,
        )

    @hookimpl
    def encompass_lab_peers(self) -> Iterator[LabPeerRecord]:
        yield LabPeerRecord(name="nfs", start=_lab_nas, kind="nas",
                            description="nfs-ganesha and rpcbind (NFSv3 and v4) in a private network "
                                        "namespace the caller's thread joins")
