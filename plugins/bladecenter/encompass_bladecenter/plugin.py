"""Hook implementations: the ``bladecenter`` platform driver, SLP discovery of Management
Modules, and the lab chassis peer (tests and ``encompass demo --physical``).

Nothing here imports pysnmp: ``encompass plugins`` works without it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from encompass_core import hookimpl
from encompass_core.records import PlatformDriverRecord

from .settings import PLATFORM


def _platform(section: Any, config: Any) -> Any:
    from .driver import BladeCenterPlatformDriver

    return BladeCenterPlatformDriver(section, config)


class BladeCenterPlugin:
    """IBM BladeCenter chassis: blades powered, booted and identified through the MM's SNMP."""

    @hookimpl
    def encompass_platform_drivers(self) -> Iterator[PlatformDriverRecord]:
        yield PlatformDriverRecord(
            name="bladecenter", factory=_platform, settings=PLATFORM,
            description="blades of an IBM BladeCenter chassis, through its Management Module (SNMP)")
