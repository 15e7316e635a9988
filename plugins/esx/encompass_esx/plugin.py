"""Hook implementations: the ``esx`` platform driver and the ``esx`` storage driver.

Nothing here imports pyvmomi: ``encompass plugins`` works without it installed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from encompass_core import hookimpl
from encompass_core.records import CliCommandRecord, PlatformDriverRecord, StorageDriverRecord

from .settings import PLATFORM, POOL

#: The edition of the driver contract this plugin is written for (encompass_core.contracts).
CONTRACT_EDITION = 2


def _platform(section: Any, config: Any) -> Any:
    from .platform import EsxPlatformDriver

    return EsxPlatformDriver(section, config)


def _pool(section: Any, config: Any) -> Any:
    from .storage import EsxStorageDriver

    return EsxStorageDriver(section, config)


class EsxPlugin:
    """VMware vCenter and ESX: machines and datastores, one set of settings for both."""

    @hookimpl
    def encompass_platform_drivers(self) -> Iterator[PlatformDriverRecord]:
        yield PlatformDriverRecord(
            name="esx", factory=_platform, settings=PLATFORM,
            description="virtual machines of a VMware vCenter or ESX host (pyvmomi)")

    @hookimpl
    def encompass_storage_drivers(self) -> Iterator[StorageDriverRecord]:
        yield StorageDriverRecord(
            name="esx", factory=_pool, settings=POOL,
            description="VMDKs on a VMware datastore, through vCenter or an ESX host (pyvmomi)")

    @hookimpl
    def encompass_cli_commands(self) -> Iterator[CliCommandRecord]:
        from .cli import esx

        yield CliCommandRecord(name="esx", command=esx)
