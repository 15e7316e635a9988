"""Hook implementations of encompass-redfish: registration only.

The driver module (and ``sushy``) is imported inside the hook, so ``encompass plugins`` stays
cheap. The hook reference is ``docs/hooks.md`` of Encompass.
"""

from __future__ import annotations

from collections.abc import Iterator

from encompass_core import hookimpl
from encompass_core.records import PlatformDriverRecord
from encompass_core.settings import Setting

#: The edition of the driver contract this plugin is written for (encompass_core.contracts).
CONTRACT_EDITION = 2

#: What a ``[platforms.NAME]`` table of this driver may hold.
PLATFORM_SETTINGS = (
    Setting("address", str, required=True,
            help="the Redfish service's URL, such as https://bmc1.example.com"),
    Setting("username", str, help="the BMC account"),
    Setting("password", secret=True, help="the BMC account's password"),
    Setting("verify_tls", bool, True, "check the BMC's TLS certificate (false for self-signed ones)"),
    Setting("systems", list, help="manage only these systems (by Name); default: every system"),
    Setting("power_timeout", float, 120.0, "seconds a power change may take", minimum=1),
    Setting("request_timeout", float, 60.0, "seconds one Redfish request may take", minimum=1),
)


@hookimpl
def encompass_platform_drivers() -> Iterator[PlatformDriverRecord]:
    from .platform import RedfishPlatformDriver

    yield PlatformDriverRecord(name="redfish", factory=RedfishPlatformDriver,
                               description="servers with a Redfish BMC (sushy)",
                               settings=PLATFORM_SETTINGS)
