"""``unattend.xml`` for Windows Vista and later, written from settings and read back.

The file is regenerated whole from the settings each time an item changes one (so elements
always come in the order Windows Setup expects: in a TCPIP ``Interface``, ``Ipv4Settings``,
``Identifier``, ``UnicastIpAddresses``, then ``Routes``). The settings of the file already in
the image are read back from it first: items sharing the file each add theirs. A file that
Encompass did not write (no marker comment) holds no settings of ours and is replaced.

Layout, as Microsoft's unattend reference gives it: ``<unattend>`` holds ``<settings pass=...>``
(``specialize``, then ``oobeSystem``), each holding ``<component>`` elements with ``name``,
``processorArchitecture``, ``publicKeyToken="31bf3856ad364e35"``, ``language="neutral"``,
``versionScope="nonSxS"``. Passwords of user accounts are not stored as plain text: the value
is base64 of the UTF-16LE text of the password followed by the element's name
(``AdministratorPassword`` or ``Password``), with ``<PlainText>false</PlainText>``.
"""

from __future__ import annotations

import base64
import binascii
import xml.etree.ElementTree as ET
from collections.abc import Mapping

from .settings import addresses, lines

NS = "urn:schemas-microsoft-com:unattend"
WCM = "http://schemas.microsoft.com/WMIConfig/2002/State"
PUBLIC_KEY_TOKEN = "31bf3856ad364e35"
MARKER = "Made by Encompass (sysprep plugin)"
ARCHITECTURE = "_architecture"  # settings that are item parameters, not values
INTERFACE = "_interface"
ADMINISTRATOR = "Administrator"

ET.register_namespace("", NS)
ET.register_namespace("wcm", WCM)


def _q(tag: str) -> str:
    return f"{{{NS}}}{tag}"


def encode_password(password: str, element: str) -> str:
    """A password as unattend.xml stores it with ``PlainText=false``: base64 of the UTF-16LE
    text of the password followed by ``element`` (``AdministratorPassword``, ``Password``)."""
    return base64.b64encode((password + element).encode("utf-16-le")).decode("ascii")


def decode_password(value: str, element: str) -> str | None:
    """The password :func:`encode_password` encoded, or None when ``value`` is not such."""
    try:
        text = base64.b64decode(value, validate=True).decode("utf-16-le")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return text[: -len(element)] if text.endswith(element) else None


class _Builder:
    """Appends elements in the order they are asked for (the order of the reference)."""

    def __init__(self, architecture: str) -> None:
        self.root = ET.Element(_q("unattend"))
        self.root.append(ET.Comment(f" {MARKER}: regenerated from the clone's inputs at each "
                                    "customization; un-customizing removes it. "))
        self.architecture = architecture

    def settings(self, pass_name: str) -> ET.Element:
        return ET.SubElement(self.root, _q("settings"), {"pass": pass_name})

    def component(self, parent: ET.Element, name: str) -> ET.Element:
        return ET.SubElement(parent, _q("component"), {
            "name": name, "processorArchitecture": self.architecture,
            "publicKeyToken": PUBLIC_KEY_TOKEN, "language": "neutral", "versionScope": "nonSxS"})


def _add(parent: ET.Element, tag: str, text: str | None = None, **attributes: str) -> ET.Element:
    element = ET.SubElement(parent, _q(tag), {f"{{{WCM}}}{k}": v for k, v in attributes.items()})
    if text is not None:
        element.text = text
    return element


def _password(parent: ET.Element, tag: str, password: str, suffix: str) -> None:
    holder = _add(parent, tag)
    _add(holder, "Value", encode_password(password, suffix))
    _add(holder, "PlainText", "false")


def _specialize(build: _Builder, values: Mapping[str, str]) -> None:
    settings = build.settings("specialize")
    shell = [(tag, values.get(name, "")) for tag, name in (
        ("ComputerName", "computer-name"), ("ProductKey", "product-key"),
        ("RegisteredOrganization", "registered-organization"), ("RegisteredOwner", "registered-owner"),
        ("TimeZone", "time-zone"))]
    if any(value for _, value in shell):
        component = build.component(settings, "Microsoft-Windows-Shell-Setup")
        for tag, value in shell:
            if value:
                _add(component, tag, value)
    domain = values.get("domain", "")
    if domain:
        identification = _add(build.component(settings, "Microsoft-Windows-UnattendedJoin"), "Identification")
        user = values.get("domain-user", "")
        if user:
            credentials = _add(identification, "Credentials")
            if "\\" not in user and "@" not in user:
                _add(credentials, "Domain", domain)
            if values.get("domain-password"):
                _add(credentials, "Password", values["domain-password"])
            _add(credentials, "Username", user)
        _add(identification, "JoinDomain", domain)
        if values.get("machine-ou"):
            _add(identification, "MachineObjectOU", values["machine-ou"])
    interface = values.get(INTERFACE) or "Ethernet"
    address, gateway = values.get("ip-address", ""), values.get("gateway", "")
    if address or gateway:
        entry = _add(_add(build.component(settings, "Microsoft-Windows-TCPIP"), "Interfaces"), "Interface",
                     action="add")
        if address:
            ipv4 = _add(entry, "Ipv4Settings")
            _add(ipv4, "DhcpEnabled", "false")
        _add(entry, "Identifier", interface)
        if address:
            _add(_add(entry, "UnicastIpAddresses"), "IpAddress", address, action="add", keyValue="1")
        if gateway:
            route = _add(_add(entry, "Routes"), "Route", action="add")
            _add(route, "Identifier", "0")
            _add(route, "NextHopAddress", gateway)
            _add(route, "Prefix", "0.0.0.0/0")
    servers = addresses(values.get("dns", ""))
    if servers:
        client = build.component(settings, "Microsoft-Windows-DNS-Client")
        entry = _add(_add(client, "Interfaces"), "Interface", action="add")
        search = _add(entry, "DNSServerSearchOrder")
        for number, server in enumerate(servers, 1):
            _add(search, "IpAddress", server, action="add", keyValue=str(number))
        _add(entry, "Identifier", interface)
    commands = lines(values.get("commands", ""))
    if commands:
        run = _add(build.component(settings, "Microsoft-Windows-Deployment"), "RunSynchronous")
        for order, command in enumerate(commands, 1):
            step = _add(run, "RunSynchronousCommand", action="add")
            _add(step, "Order", str(order))
            _add(step, "Path", command)
    if not len(settings):
        build.root.remove(settings)


def _oobe_system(build: _Builder, values: Mapping[str, str]) -> None:
    settings = build.settings("oobeSystem")
    if values.get("locale"):
        international = build.component(settings, "Microsoft-Windows-International-Core")
        for tag in ("InputLocale", "SystemLocale", "UILanguage", "UserLocale"):
            _add(international, tag, values["locale"])
    shell = build.component(settings, "Microsoft-Windows-Shell-Setup")
    admin_password = values.get("admin-password", "")
    if values.get("auto-logon"):
        logon = _add(shell, "AutoLogon")
        if admin_password:
            _password(logon, "Password", admin_password, "Password")
        _add(logon, "Enabled", "true")
        _add(logon, "LogonCount", values["auto-logon"])
        _add(logon, "Username", ADMINISTRATOR)
    # Without these, the out-of-box experience stops to ask.
    oobe = _add(shell, "OOBE")
    _add(oobe, "HideEULAPage", "true")
    _add(oobe, "NetworkLocation", "Work")
    _add(oobe, "ProtectYourPC", "3")
    for tag, name in (("RegisteredOrganization", "registered-organization"),
                      ("RegisteredOwner", "registered-owner"), ("TimeZone", "time-zone")):
        if values.get(name):
            _add(shell, tag, values[name])
    account = values.get("local-account", "")
    if admin_password or account:
        accounts = _add(shell, "UserAccounts")
        if admin_password:
            _password(accounts, "AdministratorPassword", admin_password, "AdministratorPassword")
        if account:
            name, _, password = account.partition(":")
            local = _add(_add(accounts, "LocalAccounts"), "LocalAccount", action="add")
            _password(local, "Password", password, "Password")
            _add(local, "DisplayName", name)
            _add(local, "Group", "Administrators")
            _add(local, "Name", name)


def render(values: Mapping[str, str]) -> bytes:
    """The whole answer file for ``values`` (setting name → value; empty ones left out)."""
    build = _Builder(values.get(ARCHITECTURE) or "amd64")
    _specialize(build, values)
    _oobe_system(build, values)
    ET.indent(build.root, "  ")
    return ET.tostring(build.root, encoding="utf-8", xml_declaration=True) + b"\n"


def _component(root: ET.Element, pass_name: str, name: str) -> ET.Element | None:
    for settings in root.findall(_q("settings")):
        if settings.get("pass") == pass_name:
            for component in settings.findall(_q("component")):
                if component.get("name") == name:
                    return component
    return None


def _texts(component: ET.Element | None, path: str) -> list[str]:
    if component is None:
        return []
    found = component.findall("/".join(_q(tag) for tag in path.split("/")))
    return [element.text or "" for element in found]


def _text(component: ET.Element | None, path: str) -> str:
    texts = _texts(component, path)
    return texts[0] if texts else ""


def read(data: bytes) -> dict[str, str]:
    """The settings of an answer file :func:`render` wrote; {} for any other file."""
    if MARKER.encode() not in data:
        return {}
    try:
        root = ET.fromstring(data)
    except ET.ParseError:
        return {}
    values: dict[str, str] = {}
    first = root.find(f"{_q('settings')}/{_q('component')}")
    if first is not None and first.get("processorArchitecture"):
        values[ARCHITECTURE] = first.get("processorArchitecture", "")
    shell = _component(root, "specialize", "Microsoft-Windows-Shell-Setup")
    for tag, name in (("ComputerName", "computer-name"), ("ProductKey", "product-key"),
                      ("RegisteredOrganization", "registered-organization"),
                      ("RegisteredOwner", "registered-owner"), ("TimeZone", "time-zone")):
        values[name] = _text(shell, tag)
    join = _component(root, "specialize", "Microsoft-Windows-UnattendedJoin")
    values["domain"] = _text(join, "Identification/JoinDomain")
    values["domain-user"] = _text(join, "Identification/Credentials/Username")
    values["domain-password"] = _text(join, "Identification/Credentials/Password")
    values["machine-ou"] = _text(join, "Identification/MachineObjectOU")
    tcpip = _component(root, "specialize", "Microsoft-Windows-TCPIP")
    values["ip-address"] = _text(tcpip, "Interfaces/Interface/UnicastIpAddresses/IpAddress")
    values["gateway"] = _text(tcpip, "Interfaces/Interface/Routes/Route/NextHopAddress")
    dns = _component(root, "specialize", "Microsoft-Windows-DNS-Client")
    values["dns"] = ",".join(_texts(dns, "Interfaces/Interface/DNSServerSearchOrder/IpAddress"))
    values[INTERFACE] = (_text(tcpip, "Interfaces/Interface/Identifier")
                         or _text(dns, "Interfaces/Interface/Identifier"))
    deployment = _component(root, "specialize", "Microsoft-Windows-Deployment")
    values["commands"] = "\n".join(_texts(deployment, "RunSynchronous/RunSynchronousCommand/Path"))
    international = _component(root, "oobeSystem", "Microsoft-Windows-International-Core")
    values["locale"] = _text(international, "UserLocale")
    oobe = _component(root, "oobeSystem", "Microsoft-Windows-Shell-Setup")
    values["auto-logon"] = _text(oobe, "AutoLogon/LogonCount")
    admin = _text(oobe, "UserAccounts/AdministratorPassword/Value")
    values["admin-password"] = decode_password(admin, "AdministratorPassword") or "" if admin else ""
    account = _text(oobe, "UserAccounts/LocalAccounts/LocalAccount/Name")
    if account:
        password = decode_password(_text(oobe, "UserAccounts/LocalAccounts/LocalAccount/Password/Value"),
                                   "Password")
        values["local-account"] = f"{account}:{password or ''}"
    return {name: value for name, value in values.items() if value}
