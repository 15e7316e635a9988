"""The value of a ``network`` item, parsed and checked: ``dhcp`` or an address and its options.

``192.0.2.10/24,gateway=192.0.2.1,dns=192.0.2.2,dns=192.0.2.3,mtu=1500`` or ``dhcp[,mtu=N]``
(IPv6 addresses too: ``2001:db8::10/64,gateway=2001:db8::1``). Every error is one line that
names the part of the value at fault.
"""

from __future__ import annotations

import ipaddress
import re

import attrs

from ...errors import InvalidInput
from ...model import CustomizationItem

Address = ipaddress.IPv4Interface | ipaddress.IPv6Interface
_INTERFACE = re.compile(r"[A-Za-z0-9_.:-]{1,15}")  # IFNAMSIZ: 15 bytes and the NUL
_MAC = re.compile(r"([0-9a-f]{2}:){5}[0-9a-f]{2}")
EXAMPLE = "e.g. 192.0.2.10/24,gateway=192.0.2.1,dns=192.0.2.2 or dhcp"


@attrs.frozen
class NetConfig:
    """A static or DHCP configuration of one interface."""

    dhcp: bool
    address: Address | None = None
    gateway: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None
    dns: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...] = ()
    mtu: int | None = None

    @property
    def version(self) -> int:
        return self.address.version if self.address is not None else 4


def interface_match(item: CustomizationItem) -> tuple[str | None, str | None]:
    """(interface name, MAC address) from the item's parameters; at least one is given."""
    name = str(item.params.get("interface", "")).strip() or None
    mac = str(item.params.get("mac", "")).strip().lower() or None
    if name is None and mac is None:
        raise InvalidInput(f"item '{item.key}': say which interface: --param interface=eth0 or "
                           "--param mac=52:54:00:12:34:56")
    if name is not None and not _INTERFACE.fullmatch(name):
        raise InvalidInput(f"item '{item.key}': interface={name!r} is not an interface name "
                           "(1-15 letters, digits, _ . : -)")
    if mac is not None and not _MAC.fullmatch(mac):
        raise InvalidInput(f"item '{item.key}': mac={mac!r} is not a MAC address like 52:54:00:12:34:56")
    return name, mac


def _ip(item: CustomizationItem, what: str, text: str):
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise InvalidInput(f"item '{item.key}': {what} {text!r} is not an IP address") from None


def parse_netconfig(item: CustomizationItem, value: str) -> NetConfig:
    """Parse and check a network value (see the module docstring)."""
    parts = [p.strip() for p in value.strip().split(",") if p.strip()]
    if not parts:
        raise InvalidInput(f"item '{item.key}': no network configuration given; {EXAMPLE}")
    first, options = parts[0], parts[1:]
    if first.startswith("address="):
        first = first.removeprefix("address=")
    dhcp = first.lower() == "dhcp"
    address = None
    if not dhcp:
        if "=" in first:
            raise InvalidInput(f"item '{item.key}': the value starts with the address or 'dhcp', "
                               f"not {first!r}; {EXAMPLE}")
        if "/" not in first:
            raise InvalidInput(f"item '{item.key}': address {first!r} has no prefix length; "
                               f"give it, e.g. {first}/24")
        try:
            address = ipaddress.ip_interface(first)
        except ValueError:
            raise InvalidInput(f"item '{item.key}': {first!r} is not an address/prefix, e.g. "
                               "192.0.2.10/24 or 2001:db8::10/64") from None
        network = address.network
        if address.version == 4 and network.prefixlen <= 30 and address.ip in (
                network.network_address, network.broadcast_address):
            raise InvalidInput(f"item '{item.key}': {first} is the network's "
                               f"{'network' if address.ip == network.network_address else 'broadcast'} "
                               "address, not a host's")
    gateway, dns, mtu = None, [], None
    for option in options:
        key, sep, text = option.partition("=")
        key = key.strip().lower()
        text = text.strip()
        if not sep or not text:
            raise InvalidInput(f"item '{item.key}': {option!r} is not NAME=VALUE (gateway, dns, mtu)")
        if key == "gateway":
            if dhcp:
                raise InvalidInput(f"item '{item.key}': a gateway comes from DHCP; drop gateway= "
                                   "or give a static address")
            gateway = _ip(item, "gateway", text)
            if gateway.version != address.version or gateway not in address.network:
                raise InvalidInput(f"item '{item.key}': gateway {text} is not in the network "
                                   f"{address.network} of the address")
            if gateway == address.ip:
                raise InvalidInput(f"item '{item.key}': the gateway {text} is the address itself")
        elif key == "dns":
            dns += [_ip(item, "dns", server) for server in text.split()]
        elif key == "mtu":
            if not text.isdigit() or not 68 <= int(text) <= 65535:
                raise InvalidInput(f"item '{item.key}': mtu={text!r} is not a number of bytes "
                                   "from 68 to 65535")
            mtu = int(text)
            if address is not None and address.version == 6 and mtu < 1280:
                raise InvalidInput(f"item '{item.key}': IPv6 needs an mtu of at least 1280, not {mtu}")
        else:
            raise InvalidInput(f"item '{item.key}': unknown option {key!r}; known: gateway, dns, mtu")
    return NetConfig(dhcp, address, gateway, tuple(dns), mtu)
