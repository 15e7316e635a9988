"""``sysprep.inf`` for Windows XP and Server 2003 (``C:\\sysprep\\sysprep.inf``), written from
settings and read back, as :mod:`.unattend` does for unattend.xml.

Sections: ``[Unattended]`` (no EULA stop), ``[GuiUnattended]`` (administrator password, time zone
index, auto logon), ``[UserData]`` (computer name, owner, organization, product key),
``[Identification]`` (domain join or workgroup), ``[Networking]`` (default components, or a
static address through ``[NetAdapters]``/``[NetProtocols]`` and the ``params.*`` sections), and
``[GuiRunOnce]`` for commands. Mini-setup reads the administrator password as plain text
(``EncryptedAdminPassword=NO``): the file lives only inside the image, and un-customizing removes it.
Lines end with CRLF, as Windows tools write them.
"""

from __future__ import annotations

import configparser
import ipaddress
from collections.abc import Mapping

from .settings import addresses, lines

MARKER = "; Made by Encompass (sysprep plugin): regenerated from the clone's inputs at each customization"
_ADAPTER = "params.MS_TCPIP.Adapter1"


def _quoted(value: str) -> str:
    return '"' + value + '"'  # values holding '"' are refused before (sysprep.inf cannot escape it)


def _unquoted(value: str) -> str:
    value = value.strip()
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value


def render(values: Mapping[str, str]) -> bytes:
    """The whole file for ``values`` (setting name → value; empty ones left out)."""
    sections: dict[str, list[tuple[str, str]]] = {
        "Unattended": [("OemSkipEula", "Yes"), ("UpdateInstalledDrivers", "Yes")],
        "GuiUnattended": [("OEMSkipRegional", "1"), ("OemSkipWelcome", "1")],
        "UserData": [],
        "Identification": [],
        "Networking": [],
    }
    gui, user, identification = sections["GuiUnattended"], sections["UserData"], sections["Identification"]
    if values.get("admin-password"):
        gui += [("AdminPassword", _quoted(values["admin-password"])), ("EncryptedAdminPassword", "NO")]
    if values.get("time-zone"):
        gui.append(("TimeZone", values["time-zone"]))
    if values.get("auto-logon"):
        gui += [("AutoLogon", "Yes"), ("AutoLogonCount", values["auto-logon"])]
    for key, name in (("ComputerName", "computer-name"), ("FullName", "registered-owner"),
                      ("OrgName", "registered-organization"), ("ProductKey", "product-key")):
        if values.get(name):
            plain = key in ("ComputerName", "ProductKey")
            user.append((key, values[name] if plain else _quoted(values[name])))
    if values.get("domain"):
        identification.append(("JoinDomain", values["domain"]))
        if values.get("domain-user"):
            identification.append(("DomainAdmin", values["domain-user"]))
        if values.get("domain-password"):
            identification.append(("DomainAdminPassword", _quoted(values["domain-password"])))
        if values.get("machine-ou"):
            identification.append(("MachineObjectOU", _quoted(values["machine-ou"])))
    else:
        identification.append(("JoinWorkgroup", "WORKGROUP"))
    address, gateway = values.get("ip-address"), values.get("gateway")
    servers = addresses(values.get("dns", ""))
    if address or gateway or servers:
        sections["Networking"].append(("InstallDefaultComponents", "No"))
        sections["NetAdapters"] = [("Adapter1", "params.Adapter1")]
        sections["params.Adapter1"] = [("INFID", "*")]
        sections["NetClients"] = [("MS_MSClient", "params.MS_MSClient")]
        sections["NetServices"] = [("MS_SERVER", "params.MS_SERVER")]
        sections["NetProtocols"] = [("MS_TCPIP", "params.MS_TCPIP")]
        sections["params.MS_TCPIP"] = [("AdapterSections", _ADAPTER)]
        adapter = sections[_ADAPTER] = [("SpecificTo", "Adapter1")]
        if address:
            interface = ipaddress.IPv4Interface(address)
            adapter += [("DHCP", "No"), ("IPAddress", str(interface.ip)),
                        ("SubnetMask", str(interface.netmask))]
        else:
            adapter.append(("DHCP", "Yes"))
        if gateway:
            adapter.append(("DefaultGateway", gateway))
        if servers:
            adapter.append(("DNSServerSearchOrder", ",".join(servers)))
    else:
        sections["Networking"].append(("InstallDefaultComponents", "Yes"))
    commands = lines(values.get("commands", ""))
    if commands:
        sections["GuiRunOnce"] = [(f"Command{n}", _quoted(c)) for n, c in enumerate(commands)]
    out = [MARKER]
    for name, entries in sections.items():
        out.append(f"[{name}]")
        out += [f"{key}={value}" for key, value in entries]
        out.append("")
    return "\r\n".join(out).encode("utf-8")


def read(data: bytes) -> dict[str, str]:
    """The settings of a file :func:`render` wrote; {} for any other file."""
    text = data.decode("utf-8", errors="replace")
    if not text.startswith(MARKER):
        return {}
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # keys keep their case
    try:
        parser.read_string(text)
    except configparser.Error:
        return {}

    def get(section: str, key: str) -> str:
        return _unquoted(parser.get(section, key, fallback=""))

    values = {
        "admin-password": get("GuiUnattended", "AdminPassword"),
        "time-zone": get("GuiUnattended", "TimeZone"),
        "auto-logon": get("GuiUnattended", "AutoLogonCount"),
        "computer-name": get("UserData", "ComputerName"),
        "registered-owner": get("UserData", "FullName"),
        "registered-organization": get("UserData", "OrgName"),
        "product-key": get("UserData", "ProductKey"),
        "domain": get("Identification", "JoinDomain"),
        "domain-user": get("Identification", "DomainAdmin"),
        "domain-password": get("Identification", "DomainAdminPassword"),
        "machine-ou": get("Identification", "MachineObjectOU"),
        "gateway": get(_ADAPTER, "DefaultGateway"),
        "dns": get(_ADAPTER, "DNSServerSearchOrder"),
    }
    if get(_ADAPTER, "IPAddress"):
        try:
            values["ip-address"] = str(ipaddress.IPv4Interface(f"{get(_ADAPTER, 'IPAddress')}/"
                                                              f"{get(_ADAPTER, 'SubnetMask') or '32'}"))
        except ValueError:
            pass  # edited by hand into something else: the item setting it writes it again
    if parser.has_section("GuiRunOnce"):
        values["commands"] = "\n".join(_unquoted(v) for _, v in parser.items("GuiRunOnce"))
    return {name: value for name, value in values.items() if value}
