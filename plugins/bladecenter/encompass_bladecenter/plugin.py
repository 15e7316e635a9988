"""Hook implementations: the ``bladecenter`` platform driver, SLP discovery of Management
Modules, and the lab chassis peer (tests and ``encompass demo --physical``).

Nothing here imports pysnmp: ``encompass plugins`` works without it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from encompass_core import hookimpl
from encompass_core.errors import InvalidInput
from encompass_core.records import DiscoveryContext, LabPeerRecord, PlatformDriverRecord

from .settings import PLATFORM

#: The driver contract edition this plugin was written for (encompass plugins shows it).
CONTRACT_EDITION = 2


def _platform(section: Any, config: Any) -> Any:
    from .driver import BladeCenterPlatformDriver

    return BladeCenterPlatformDriver(section, config)


def _lab_chassis(workdir: Any, san_portal: str | None, count: int) -> Any:
    from .lab_peer import lab_peer

    return lab_peer(workdir, san_portal, count)


class BladeCenterPlugin:
    """IBM BladeCenter chassis: blades powered, booted and identified through the MM's SNMP."""

    @hookimpl
    def encompass_platform_drivers(self) -> Iterator[PlatformDriverRecord]:
        yield PlatformDriverRecord(
            name="bladecenter", factory=_platform, settings=PLATFORM,
            description="blades of an IBM BladeCenter chassis, through its Management Module (SNMP)")

    @hookimpl
    def encompass_discover_platforms(self, context: DiscoveryContext) -> list[dict[str, Any]]:
        """Management Modules that answer an SLP Service Request at the seeds."""
        import asyncio

        from .slpfind import find_modules, proposal

        if not context.seeds:
            return []
        try:
            found = asyncio.run(find_modules(context.seeds))
        except ValueError as error:
            raise InvalidInput(f"bladecenter discovery: {error}") from None
        return [proposal(module) for module in found]

    @hookimpl
    def encompass_lab_peers(self) -> Iterator[LabPeerRecord]:
        yield LabPeerRecord(name="bladecenter", start=_lab_chassis,
                            description="a BladeCenter chassis (snmpd as nobody) whose blades are "
                                        "QEMU guests booting their SAN LUN 0")
