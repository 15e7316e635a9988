"""The keys of a platform-side customization, in a module of their own: the CLI offers them as
``--platform-key`` choices without importing the driver contract (:mod:`encompass_core.contracts`
re-exports them)."""

from __future__ import annotations

#: What a platform-side customization (``PlatformDriver.customize``) may hold: ``dns`` is a list
#: of addresses, the others text. An item's ``platform_key`` names one of them.
PLATFORM_CUSTOMIZATION_KEYS = ("hostname", "domain", "ip", "netmask", "gateway", "dns")
