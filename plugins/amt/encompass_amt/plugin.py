"""Hook implementations: the ``amt`` platform driver (imported when a platform needs it)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from encompass_core import hookimpl
from encompass_core.records import DiscoveryContext, PlatformDriverRecord

from .settings import PLATFORM


def _platform(section: Any, config: Any) -> Any:
    from .driver import AmtPlatformDriver

    return AmtPlatformDriver(section, config)


class AmtPlugin:
    """PCs with Intel AMT: discovery, power, one-time boot source, deploy from an iSCSI LUN."""

    @hookimpl
    def encompass_platform_drivers(self) -> Iterator[PlatformDriverRecord]:
        yield PlatformDriverRecord(
            name="amt", factory=_platform, settings=PLATFORM,
            description="PCs with Intel AMT, through WS-Management (power, boot source, identity)")

    @hookimpl
    def encompass_discover_platforms(self, context: DiscoveryContext) -> list[dict[str, Any]]:
        """AMT PCs answering at the seeds' addresses (an unauthenticated probe each, at once)."""
        if not context.seeds:
            return []
        import asyncio

        from .probe import find_pcs, proposals

        return proposals(asyncio.run(find_pcs(context.seeds)))
