"""The answer files themselves, without disks: password encoding, the architecture taken from the
master's hardware profile, every optional setting rendered and read back, values refused."""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET

import attrs
import pytest
from encompass_sysprep import sysprepinf, unattend
from encompass_sysprep.customizer import SysprepCustomizer
from encompass_sysprep.presets import windows_items

from encompass_core.errors import InvalidInput
from encompass_core.model import CustomizationItem, HardwareProfile, Image

U = "{urn:schemas-microsoft-com:unattend}"
WCM = "{http://schemas.microsoft.com/WMIConfig/2002/State}"
EVERYTHING = {"computer-name": "APP01", "registered-owner": "Ops", "registered-organization": "Example",
              "time-zone": "UTC", "product-key": "AAAAA-BBBBB-CCCCC-DDDDD-EEEEE", "locale": "en-US",
              "admin-password": "p\u00e4ss", "local-account": "ops:0ps", "auto-logon": "2",
              "domain": "corp.example.com", "domain-user": "joiner", "domain-password": "j",
              "machine-ou": "OU=Servers,DC=corp,DC=example,DC=com", "ip-address": "192.0.2.10/24",
              "gateway": "192.0.2.1", "dns": "192.0.2.53", "commands": "cmd /c one\ncmd /c two",
              unattend.ARCHITECTURE: "x86", unattend.INTERFACE: "Local Area Connection"}


def test_password_encoding_is_base64_of_utf16le_with_the_element_name() -> None:
    # The form Windows SIM writes for the password "Password".
    assert unattend.encode_password("Password", "AdministratorPassword") == base64.b64encode(
        "PasswordAdministratorPassword".encode("utf-16-le")).decode()
    encoded = unattend.encode_password("p\u00e4ss", "Password")
    assert unattend.decode_password(encoded, "Password") == "p\u00e4ss"
    assert unattend.decode_password("bm90IG91cnM=", "Password") is None


def test_architecture_comes_from_the_hardware_profile() -> None:
    master = Image(name="win32", kind="master", state="ready",
                   hardware=HardwareProfile(arch="i686"))
    items = windows_items(master)
    assert {item["params"]["architecture"] for item in items} == {"x86"}
    assert windows_items(attrs.evolve(master, hardware=HardwareProfile(arch="x86_64")))[0]["params"] == {
        "architecture": "amd64"}


def test_every_setting_is_rendered_where_the_reference_puts_it_and_read_back() -> None:
    data = unattend.render(EVERYTHING)
    assert unattend.read(data) == EVERYTHING
    root = ET.fromstring(data)
    components = {(s.get("pass"), c.get("name")): c for s in root for c in s if c.tag == f"{U}component"}
    assert {c.get("processorArchitecture") for c in components.values()} == {"x86"}
    shell = components["specialize", "Microsoft-Windows-Shell-Setup"]
    assert [e.tag.removeprefix(U) for e in shell] == ["ComputerName", "ProductKey", "RegisteredOrganization",
                                                      "RegisteredOwner", "TimeZone"]
    join = components["specialize", "Microsoft-Windows-UnattendedJoin"]
    assert join.find(f"{U}Identification/{U}MachineObjectOU").text == EVERYTHING["machine-ou"]
    run = components["specialize", "Microsoft-Windows-Deployment"].findall(
        f"{U}RunSynchronous/{U}RunSynchronousCommand")
    assert [(c.get(f"{WCM}action"), c.find(f"{U}Order").text, c.find(f"{U}Path").text) for c in run] == [
        ("add", "1", "cmd /c one"), ("add", "2", "cmd /c two")]
    assert components["specialize", "Microsoft-Windows-TCPIP"].find(
        f"{U}Interfaces/{U}Interface/{U}Identifier").text == "Local Area Connection"
    oobe = components["oobeSystem", "Microsoft-Windows-Shell-Setup"]
    logon = oobe.find(f"{U}AutoLogon")
    assert [e.tag.removeprefix(U) for e in logon] == ["Password", "Enabled", "LogonCount", "Username"]
    assert unattend.decode_password(logon.find(f"{U}Password/{U}Value").text, "Password") == "p\u00e4ss"
    account = oobe.find(f"{U}UserAccounts/{U}LocalAccounts/{U}LocalAccount")
    assert account.get(f"{WCM}action") == "add" and account.find(f"{U}Group").text == "Administrators"
    assert unattend.decode_password(account.find(f"{U}Password/{U}Value").text, "Password") == "0ps"
    international = components["oobeSystem", "Microsoft-Windows-International-Core"]
    assert {e.tag.removeprefix(U): e.text for e in international} == {
        "InputLocale": "en-US", "SystemLocale": "en-US", "UILanguage": "en-US", "UserLocale": "en-US"}


def test_sysprep_inf_reads_back_what_it_wrote() -> None:
    unattend_only = ("locale", "local-account", unattend.ARCHITECTURE, unattend.INTERFACE)
    values = {k: v for k, v in EVERYTHING.items() if k not in unattend_only}
    assert sysprepinf.read(sysprepinf.render(values)) == values
    assert sysprepinf.read(b"[UserData]\r\nComputerName=OTHER\r\n") == {}  # not ours: replaced whole


@pytest.mark.parametrize(("setting", "value", "words"), [
    ("computer-name", "much-too-long-name", "NetBIOS"),
    ("ip-address", "192.0.2.10", "prefix length"),
    ("ip-address", "192.0.2.300/24", "IPv4 address with a prefix"),
    ("gateway", "192.0.2.1,192.0.2.2", "one gateway"),
    ("dns", "192.0.2.1, nameserver", "IPv4 address list"),
    ("product-key", "ABC", "five groups"),
    ("auto-logon", "always", "number of logons"),
])
def test_bad_values_are_refused(setting: str, value: str, words: str) -> None:
    item = CustomizationItem(key="k", type="sysprep", path="/Windows/Panther/unattend.xml",
                             params={"setting": setting})
    with pytest.raises(InvalidInput, match=words):
        SysprepCustomizer().check_value(item, value)


def test_a_secret_is_never_quoted() -> None:
    item = CustomizationItem(key="k", type="sysprep", path="/sysprep/sysprep.inf", secret=True,
                             params={"setting": "admin-password"})
    with pytest.raises(InvalidInput) as refused:
        SysprepCustomizer().check_value(item, 'has"quote-S3CRET')
    assert "S3CRET" not in str(refused.value)
    assert SysprepCustomizer().check_value(item, "from-a-file\n") == "from-a-file"
