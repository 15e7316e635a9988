"""Platform-side guest customization: a clone whose customization is only a hostname and
addresses hands them to a vSphere customization spec (``CustomizeVM_Task``), applied by the
guest's tools at the next power-on, instead of being written into its files.

The spec is Linux's (``LinuxPrep``); Windows guests are customized by the sysprep plugin.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from encompass_core.contracts import PLATFORM_CUSTOMIZATION_KEYS
from encompass_core.errors import InvalidInput

from .connection import pyvmomi

#: What a platform-side customization may hold: the core's whole vocabulary.
KEYS = PLATFORM_CUSTOMIZATION_KEYS


def check(spec: dict[str, Any], platform: str) -> None:
    """Refuse, before anything is sent, a spec vSphere cannot take."""
    unknown = sorted(set(spec) - set(KEYS))
    if unknown:
        raise InvalidInput(f"platform '{platform}' customizes {', '.join(KEYS)}, not "
                           f"{', '.join(unknown)}")
    hostname = spec.get("hostname")
    if not hostname or not isinstance(hostname, str):
        raise InvalidInput(f"platform '{platform}': a guest customization needs a hostname")
    for key in ("ip", "netmask", "gateway"):
        if spec.get(key):
            try:
                ipaddress.ip_address(spec[key])
            except ValueError:
                raise InvalidInput(f"platform '{platform}': {key} {spec[key]!r} is not an IP "
                                   "address") from None
    if spec.get("ip") and not spec.get("netmask"):
        raise InvalidInput(f"platform '{platform}': a fixed ip needs its netmask")


def specification(spec: dict[str, Any], nics: int) -> Any:
    """The ``CustomizationSpec``: the hostname, and the address on the first NIC (DHCP on the
    others; vSphere wants one adapter mapping per NIC)."""
    vim, _ = pyvmomi()
    custom = vim.vm.customization
    first = custom.IPSettings(
        ip=custom.FixedIp(ipAddress=spec["ip"]) if spec.get("ip") else custom.DhcpIpGenerator(),
        subnetMask=spec.get("netmask"),
        gateway=[spec["gateway"]] if spec.get("gateway") else None,
        dnsDomain=spec.get("domain"))
    adapters = [custom.AdapterMapping(adapter=first)]
    adapters += [custom.AdapterMapping(adapter=custom.IPSettings(ip=custom.DhcpIpGenerator()))
                 for _ in range(max(0, nics - 1))]
    dns = spec.get("dns") or []
    return custom.Specification(
        identity=custom.LinuxPrep(hostName=custom.FixedName(name=spec["hostname"]),
                                  domain=spec.get("domain") or ""),
        globalIPSettings=custom.GlobalIPSettings(dnsServerList=list(dns)),
        nicSettingMap=adapters if nics else [])
