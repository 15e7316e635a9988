"""A Windows-like master (an NTFS disk) made customizable with the ``windows`` preset, a clone
customized with a computer name, an Administrator password, a static address and a domain join,
the answer file read back with ``ntfscat`` and checked against Microsoft's unattend structure;
secrets nowhere but inside the image; a second customization holds only the second values;
un-customizing leaves no answer file.

Needs root (ntfs-3g) and the Debian packages ntfs-3g, fdisk, qemu-utils, qemu-system-common,
fuse3, libxml2-utils.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from encompass_core.testing.windisks import make_disk, ntfs_read

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="ntfs-3g mounts need root")

U = "{urn:schemas-microsoft-com:unattend}"
WCM = "{http://schemas.microsoft.com/WMIConfig/2002/State}"
ANSWER = "/Windows/Panther/unattend.xml"
ADMIN_PASSWORD = "Adm1n-S3cret!"
JOIN_PASSWORD = "J0in-Secr3t#"
SECOND_ADMIN_PASSWORD = "Second-Adm1n?"


def _values(computer: str, address: str) -> list[str]:
    return ["--set", f"computer-name={computer}", "--set", "time-zone=W. Europe Standard Time",
            "--set", "domain=corp.example.com", "--set", "domain-user=joiner",
            "--set", f"ip-address={address}", "--set", "gateway=192.0.2.1",
            "--set", "dns=192.0.2.53, 192.0.2.54"]


def _secret_files(tmp_path: Path, admin: str) -> list[str]:
    (tmp_path / "admin.pw").write_text(admin + "\n")
    (tmp_path / "join.pw").write_text(JOIN_PASSWORD + "\n")
    return ["--set-file", f"admin-password={tmp_path / 'admin.pw'}",
            "--set-file", f"domain-password={tmp_path / 'join.pw'}"]


def _component(root: ET.Element, pass_name: str, name: str) -> ET.Element:
    passes = [s for s in root.findall(f"{U}settings") if s.get("pass") == pass_name]
    assert len(passes) == 1, pass_name
    found = [c for c in passes[0].findall(f"{U}component") if c.get("name") == name]
    assert len(found) == 1, name
    component = found[0]
    assert component.attrib == {"name": name, "processorArchitecture": "amd64",
                                "publicKeyToken": "31bf3856ad364e35", "language": "neutral",
                                "versionScope": "nonSxS"}
    return component


def _children(element: ET.Element) -> list[str]:
    return [child.tag.removeprefix(U) for child in element]


def _text(element: ET.Element, path: str) -> str:
    found = element.find("/".join(U + tag for tag in path.split("/")))
    assert found is not None, path
    return found.text


def _decoded(value: str, suffix: str) -> str:
    text = base64.b64decode(value).decode("utf-16-le")
    assert text.endswith(suffix)
    return text.removesuffix(suffix)


def check_answer_file(data: bytes, tmp_path: Path, computer: str, address: str, admin: str) -> None:
    """Every component and setting, as Microsoft's unattend reference lays them out."""
    (tmp_path / "unattend.xml").write_bytes(data)
    lint = subprocess.run(["xmllint", "--noout", str(tmp_path / "unattend.xml")], capture_output=True)
    assert lint.returncode == 0, lint.stderr
    root = ET.fromstring(data)
    assert root.tag == f"{U}unattend"
    assert [s.get("pass") for s in root.findall(f"{U}settings")] == ["specialize", "oobeSystem"]

    shell = _component(root, "specialize", "Microsoft-Windows-Shell-Setup")
    assert _children(shell) == ["ComputerName", "TimeZone"]
    assert _text(shell, "ComputerName") == computer
    assert _text(shell, "TimeZone") == "W. Europe Standard Time"

    join = _component(root, "specialize", "Microsoft-Windows-UnattendedJoin")
    assert _children(join) == ["Identification"]
    assert _children(join[0]) == ["Credentials", "JoinDomain"]
    assert _text(join, "Identification/JoinDomain") == "corp.example.com"
    assert _children(join[0][0]) == ["Domain", "Password", "Username"]
    assert _text(join, "Identification/Credentials/Domain") == "corp.example.com"
    assert _text(join, "Identification/Credentials/Username") == "joiner"
    assert _text(join, "Identification/Credentials/Password") == JOIN_PASSWORD

    tcpip = _component(root, "specialize", "Microsoft-Windows-TCPIP")
    interface = tcpip.find(f"{U}Interfaces/{U}Interface")
    assert interface.get(f"{WCM}action") == "add"
    # The reference requires this order inside Interface.
    assert _children(interface) == ["Ipv4Settings", "Identifier", "UnicastIpAddresses", "Routes"]
    assert _text(interface, "Ipv4Settings/DhcpEnabled") == "false"
    assert _text(interface, "Identifier") == "Ethernet"
    ip = interface.find(f"{U}UnicastIpAddresses/{U}IpAddress")
    assert (ip.text, ip.get(f"{WCM}action"), ip.get(f"{WCM}keyValue")) == (address, "add", "1")
    route = interface.find(f"{U}Routes/{U}Route")
    assert route.get(f"{WCM}action") == "add"
    assert {tag: _text(route, tag) for tag in ("Identifier", "NextHopAddress", "Prefix")} == {
        "Identifier": "0", "NextHopAddress": "192.0.2.1", "Prefix": "0.0.0.0/0"}

    dns = _component(root, "specialize", "Microsoft-Windows-DNS-Client")
    dns_interface = dns.find(f"{U}Interfaces/{U}Interface")
    assert _text(dns_interface, "Identifier") == "Ethernet"
    servers = dns_interface.findall(f"{U}DNSServerSearchOrder/{U}IpAddress")
    assert [(s.text, s.get(f"{WCM}keyValue")) for s in servers] == [("192.0.2.53", "1"), ("192.0.2.54", "2")]

    oobe = _component(root, "oobeSystem", "Microsoft-Windows-Shell-Setup")
    assert _children(oobe) == ["OOBE", "TimeZone", "UserAccounts"]
    assert _text(oobe, "OOBE/HideEULAPage") == "true"
    assert _text(oobe, "UserAccounts/AdministratorPassword/PlainText") == "false"
    value = _text(oobe, "UserAccounts/AdministratorPassword/Value")
    assert _decoded(value, "AdministratorPassword") == admin
    assert admin.encode() not in data  # never as plain text


def _everything_but_images(home: Path) -> list[Path]:
    """Metadata, configuration, logs, run directories: every file of the home but the volumes."""
    pool = home / "pool"
    return [p for p in home.rglob("*") if p.is_file() and not p.is_relative_to(pool)]


def assert_secret_nowhere(home: Path, runs, *secrets: str) -> None:
    forms = []
    for secret in secrets:
        forms += [secret.encode(), secret.encode("utf-16-le"),
                  base64.b64encode((secret + "AdministratorPassword").encode("utf-16-le"))]
    for path in _everything_but_images(home):
        data = path.read_bytes()
        for form in forms:
            assert form not in data, f"a secret is in {path}"
    for run in runs:
        for secret in secrets:
            assert secret not in run.out and secret not in run.err


def test_windows_master_from_preset_to_answer_file(run_cli, home: Path, tmp_path: Path) -> None:
    disk = tmp_path / "windows.raw"
    partition = make_disk(disk, "ntfs", "gpt", {"/Windows/System32/config/SYSTEM": b"regf",
                                                "/Users/Public": None})
    assert run_cli("master", "import", "win10", disk).code == 0
    loaded = run_cli("master", "items", "load", "win10", "--preset", "windows", "--partition", partition)
    assert loaded.code == 0, loaded.err
    items = run_cli("master", "items", "list", "win10", "--json")
    rows = {row["key"]: row for row in json.loads(items.out)}
    assert set(rows) >= {"computer-name", "admin-password", "time-zone", "domain", "domain-user",
                         "domain-password", "ip-address", "gateway", "dns"}
    assert rows["admin-password"]["secret"] and rows["domain-password"]["secret"]
    assert run_cli("clone", "win10", "web01").code == 0

    done = run_cli("customize", "web01", *_values("WEB01", "192.0.2.10/24"),
                   *_secret_files(tmp_path, ADMIN_PASSWORD))
    assert done.code == 0, done.err
    flat = tmp_path / "web01.raw"
    overlay = json.loads(run_cli("image", "show", "web01", "--json").out)["volumes"][0]["location"]
    subprocess.run(["qemu-img", "convert", "-U", "-O", "raw", str(overlay), str(flat)], check=True)
    check_answer_file(ntfs_read(flat, partition, ANSWER, tmp_path), tmp_path, "WEB01", "192.0.2.10/24",
                      ADMIN_PASSWORD)
    # As Windows looks names up: any case.
    shown = run_cli("image", "cat", "web01", "/WINDOWS/panther/Unattend.XML", "--partition", partition)
    assert shown.code == 0 and "<ComputerName>WEB01</ComputerName>" in shown.out
    run_cli.runs.remove(shown)  # it shows the file inside the image, as asked: not a leak
    assert ntfs_read(disk, partition, ANSWER, tmp_path) is None  # the master is untouched
    assert_secret_nowhere(home, run_cli.runs, ADMIN_PASSWORD, JOIN_PASSWORD)

    # Customized again with other values: the file holds only the second ones.
    again = run_cli("customize", "web01", *_values("WEB02", "198.51.100.7/25"),
                    *_secret_files(tmp_path, SECOND_ADMIN_PASSWORD))
    assert again.code == 0, again.err
    subprocess.run(["qemu-img", "convert", "-U", "-O", "raw", str(overlay), str(flat)], check=True)
    data = ntfs_read(flat, partition, ANSWER, tmp_path)
    check_answer_file(data, tmp_path, "WEB02", "198.51.100.7/25", SECOND_ADMIN_PASSWORD)
    assert b"WEB01" not in data and b"192.0.2.10" not in data
    assert base64.b64encode((ADMIN_PASSWORD + "AdministratorPassword").encode("utf-16-le")) not in data
    assert_secret_nowhere(home, run_cli.runs, ADMIN_PASSWORD, JOIN_PASSWORD, SECOND_ADMIN_PASSWORD)

    # Un-customized: no answer file is left.
    reverted = run_cli("uncustomize", "web01")
    assert reverted.code == 0, reverted.err
    subprocess.run(["qemu-img", "convert", "-U", "-O", "raw", str(overlay), str(flat)], check=True)
    assert ntfs_read(flat, partition, ANSWER, tmp_path) is None
    assert run_cli("image", "cat", "web01", ANSWER, "--partition", partition).code != 0
    assert_secret_nowhere(home, run_cli.runs, ADMIN_PASSWORD, JOIN_PASSWORD, SECOND_ADMIN_PASSWORD)
    leftovers = list((home / "run").rglob("*")) if (home / "run").exists() else []
    assert leftovers == []
