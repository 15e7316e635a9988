"""Hook implementations: the ``amt`` platform driver (imported when a platform needs it)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from encompass_core import hookimpl, records
from encompass_core.records import CliCommandRecord, DiscoveryContext, PlatformDriverRecord

from .settings import PLATFORM

#: The driver contract edition this plugin was written for (encompass plugins shows it).
CONTRACT_EDITION = 2


def _platform(section: Any, config: Any) -> Any:
    from .driver import AmtPlatformDriver

    return AmtPlatformDriver(section, config)


def _lab_pcs(workdir: Any, san_portal: str | None, count: int) -> Any:
    from .lab_peer import lab_peer

    return lab_peer(workdir, san_portal, count)


class AmtPlugin:
    """PCs with Intel AMT: discovery, power, one-time boot source, deploy from an iSCSI LUN."""

    @hookimpl
    def encompass_platform_drivers(self) -> Iterator[PlatformDriverRecord]:
        yield PlatformDriverRecord(
            name="amt", factory=_platform, settings=PLATFORM,
            description="PCs with Intel AMT, through WS-Management (power, boot source, identity)")

    @hookimpl
    def encompass_cli_commands(self) -> Iterator[CliCommandRecord]:
        from .cli import amt

        yield CliCommandRecord(name="amt", command=amt)

    @hookimpl
    def encompass_discover_platforms(self, context: DiscoveryContext) -> list[dict[str, Any]]:
        """AMT PCs answering at the seeds' addresses (an unauthenticated probe each, at once)."""
        if not context.seeds:
            return []
        import asyncio

        from .probe import find_pcs, proposals

        return proposals(asyncio.run(find_pcs(context.seeds)))

    if hasattr(records, "LabPeerRecord"):  # a core with lab peers (encompass demo --physical)
        @hookimpl
        def encompass_lab_peers(self) -> Iterator[Any]:
            yield records.LabPeerRecord(
                name="amt", start=_lab_pcs,
                description="AMT PCs (a WS-Man responder) that are QEMU guests booting their SAN "
                            "LUN 0 once AMT forces a hard-drive boot")
