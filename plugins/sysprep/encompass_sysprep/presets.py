"""Ready-made items for Windows masters: ``master items load MASTER --preset windows``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from encompass_core.model import Image

UNATTEND_PATH = "/Windows/Panther/unattend.xml"
SYSPREP_INF_PATH = "/sysprep/sysprep.inf"
# The hardware profile's architecture, as Windows names it in processorArchitecture.
ARCHITECTURES = {"x86_64": "amd64", "amd64": "amd64", "x64": "amd64", "i386": "x86", "i686": "x86",
                 "x86": "x86", "aarch64": "arm64", "arm64": "arm64"}

# key, prompt, secret
_ITEMS = (
    ("computer-name", "Computer name (NetBIOS, at most 15 letters, digits or hyphens)", False),
    ("admin-password", "Password of the built-in Administrator", True),
    ("time-zone", "Time zone, e.g. 'W. Europe Standard Time' (empty: ask at first boot)", False),
    ("domain", "Domain to join, e.g. corp.example.com (empty: stay in the workgroup)", False),
    ("domain-user", "Account that may join computers to the domain (empty: none)", False),
    ("domain-password", "Password of that account (empty: none)", True),
    ("ip-address", "Static IPv4 address with prefix, e.g. 192.0.2.10/24 (empty: DHCP)", False),
    ("gateway", "Default gateway (empty: none)", False),
    ("dns", "DNS servers, comma-separated (empty: from DHCP)", False),
)


def architecture(master: Image) -> str:
    """``processorArchitecture`` for the master's hardware profile (amd64 when unknown)."""
    return ARCHITECTURES.get(master.hardware.arch.lower(), "amd64")


def _items(path: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for key, prompt, secret in _ITEMS:
        yield {"key": key, "type": "sysprep", "path": path, "prompt": prompt, "secret": secret,
               "description": f"sysprep: {key}", "params": dict(params)}


def windows_items(master: Image) -> list[dict[str, Any]]:
    """Windows Vista and later: Windows\\Panther\\unattend.xml."""
    return list(_items(UNATTEND_PATH, {"architecture": architecture(master)}))


def windows_xp_items(master: Image) -> list[dict[str, Any]]:
    """Windows XP / Server 2003: C:\\sysprep\\sysprep.inf (time zone as an index, e.g. 110)."""
    return list(_items(SYSPREP_INF_PATH, {}))
