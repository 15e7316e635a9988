"""The ``ds4xxx`` entry point: IBM DS4000-series subsystems through SMcli, as storage pools.

Nothing heavy is imported here: ``encompass plugins`` stays cheap.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from encompass_core import hookimpl
from encompass_core.records import CliCommandRecord, LabPeerRecord, StorageDriverRecord

from .settings import SETTINGS

#: The edition of the driver contract this plugin is written for (encompass_core.contracts).
CONTRACT_EDITION = 2

DEBIAN_PACKAGES = ("qemu-utils", "qemu-block-extra", "qemu-system-common", "e2fsprogs", "fuse3")


def _factory(section: Any, config: Any) -> Any:
    from .driver import Ds4xxxStorageDriver

    return Ds4xxxStorageDriver(section, config)


@hookimpl
def encompass_storage_drivers() -> Iterator[StorageDriverRecord]:
    yield StorageDriverRecord(
        name="ds4xxx",
        factory=_factory,
        description="IBM DS4000-series SAN logical drives through SMcli (FlashCopy, VolumeCopy, "
                    "iSCSI LUN mappings)",
        debian_packages=DEBIAN_PACKAGES,
        settings=SETTINGS,
    )


@hookimpl
def encompass_cli_commands() -> Iterator[CliCommandRecord]:
    from .cli import ds4xxx

    yield CliCommandRecord(name="ds4xxx", command=ds4xxx)


def _lab_san(*args: Any, **kwargs: Any) -> Any:
    from .lab_peer import lab_san

    return lab_san(*args, **kwargs)


@hookimpl
def encompass_lab_peers() -> Iterator[LabPeerRecord]:
    yield LabPeerRecord(name="ds4xxx", start=_lab_san, kind="san",
                        description="a DS4xxx subsystem (the plugin's SMcli simulator, not IBM's) "
                                    "whose logical drives are LUNs of a private tgtd")
