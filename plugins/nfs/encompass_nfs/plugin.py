"""Hook implementations: the ``nfs`` storage driver. Nothing here imports libnfs, so
``encompass plugins`` works without it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from encompass_core import hookimpl
from encompass_core.lazy import lazy_factory
from encompass_core.records import LabPeerRecord, StorageDriverRecord

from .settings import SETTINGS

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
        yield StorageDriverRecord(
            name="nfs",
            # The driver (libnfs, the core's copy helpers) is imported when a pool is built.
            factory=lazy_factory("encompass_nfs.driver", "NfsStorageDriver"),
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
