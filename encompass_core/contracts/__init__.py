"""The driver contract, second edition: what the core expects of storage and platform drivers.

Plugins register drivers through ``encompass_storage_drivers`` and ``encompass_platform_drivers``
(:mod:`encompass_core.hookspecs`); each record's factory builds a :class:`StorageDriver` for
one pool or a :class:`PlatformDriver` for one platform. Drivers declare what they make,
accept and can do (:class:`StorageCapabilities`, :class:`PlatformCapabilities`) and the
settings they take (:class:`~encompass_core.settings.Setting` on their records); the core checks
a request against them before it touches anything. :func:`check_capability` is that check.

``docs/architecture.md`` has the table of what each backend needs, from which this was drawn;
:mod:`encompass_core.testing` is the conformance suite that gives every method its meaning.
"""

from __future__ import annotations

from ..editions import CONTRACT_EDITION, SUPPORTED_EDITIONS
from ..errors import NotSupported
from .platform import PlatformDriver
from .storage import StorageDriver
from .streams import VolumeReader
from .values import (
    ATTACH_KINDS,
    BOOT_MODES,
    PLATFORM_CUSTOMIZATION_KEYS,
    Attachment,
    AttachRequest,
    CloneProgress,
    DiscoveredVolume,
    JobStatus,
    PlatformCapabilities,
    Progress,
    StorageCapabilities,
)


def attachment_kinds(storage: StorageDriver, platform: PlatformDriver) -> tuple[str, ...]:
    """The attachment kinds both sides know, in the platform's order of preference; refuse with
    one line when there is none (before anything is attached)."""
    offered = storage.capabilities.attach_kinds
    accepted = platform.capabilities.attach_kinds
    common = tuple(kind for kind in accepted if kind in offered)
    if not common:
        raise NotSupported(
            f"machines of platform '{platform.platform}' take {', '.join(accepted) or 'no'} volumes, "
            f"and pool '{storage.pool}' offers {', '.join(offered) or 'none'}: no way to attach. Clone "
            f"the image into a pool this platform can reach (encompass clone IMAGE NEW --pool POOL)"
        )
    return common


def check_capability(platform: PlatformDriver, capability: str, action: str) -> None:
    """Refuse ``action`` (one line) when the platform does not declare ``capability``."""
    caps = platform.capabilities
    if getattr(caps, capability):
        return
    physical = caps.kind == "physical" and capability == "create_machines"
    why = " (its machines are physical)" if physical else ""
    raise NotSupported(f"platform '{platform.platform}' cannot {action}{why}")


__all__ = [
    "ATTACH_KINDS",
    "BOOT_MODES",
    "CONTRACT_EDITION",
    "SUPPORTED_EDITIONS",
    "PLATFORM_CUSTOMIZATION_KEYS",
    "AttachRequest",
    "Attachment",
    "CloneProgress",
    "DiscoveredVolume",
    "JobStatus",
    "PlatformCapabilities",
    "PlatformDriver",
    "Progress",
    "StorageCapabilities",
    "StorageDriver",
    "VolumeReader",
    "attachment_kinds",
    "check_capability",
]
