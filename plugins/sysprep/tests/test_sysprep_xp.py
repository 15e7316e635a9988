"""Windows XP / Server 2003: the ``windows-xp`` preset writes ``C:\\sysprep\\sysprep.inf`` on a FAT
disk (mtools, no root), read back with ``mcopy`` and parsed as INI; un-customizing removes it.
Also: SetupComplete.cmd, and one-line errors that never quote a secret.

Needs the Debian packages mtools, dosfstools, fdisk, qemu-utils, qemu-system-common, fuse3.
"""

from __future__ import annotations

import configparser
import json
import subprocess
from pathlib import Path

from encompass_core.testing.windisks import fat_read, make_disk

ADMIN_PASSWORD = "Xp-Adm1n!"
JOIN_PASSWORD = "Xp-J0in!"


def _flat(run_cli, clone: str, tmp_path: Path) -> Path:
    location = json.loads(run_cli("image", "show", clone, "--json").out)["volumes"][0]["location"]
    flat = tmp_path / f"{clone}.raw"
    subprocess.run(["qemu-img", "convert", "-U", "-O", "raw", location, str(flat)], check=True)
    return flat


def _one_line_error(result, *words: str) -> str:
    assert result.code != 0
    assert "Traceback" not in result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("encompass: "), result.err
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def test_xp_master_gets_sysprep_inf(run_cli, home: Path, tmp_path: Path) -> None:
    disk = tmp_path / "xp.raw"
    partition = make_disk(disk, "fat", "mbr", {"/WINDOWS/system32/config/system": b"regf",
                                               "/SYSPREP/sysprep.exe": b"MZ"})
    assert run_cli("master", "import", "xp", disk).code == 0
    loaded = run_cli("master", "items", "load", "xp", "--preset", "windows-xp", "--partition", partition)
    assert loaded.code == 0, loaded.err
    assert run_cli("clone", "xp", "desk01").code == 0
    (tmp_path / "admin.pw").write_text(ADMIN_PASSWORD)
    (tmp_path / "join.pw").write_text(JOIN_PASSWORD)
    done = run_cli("customize", "desk01", "--set", "computer-name=DESK01", "--set", "time-zone=110",
                   "--set", "domain=corp.example.com", "--set", "domain-user=CORP\\joiner",
                   "--set", "ip-address=192.0.2.20/24", "--set", "gateway=192.0.2.1",
                   "--set", "dns=192.0.2.53",
                   "--set-file", f"admin-password={tmp_path / 'admin.pw'}",
                   "--set-file", f"domain-password={tmp_path / 'join.pw'}")
    assert done.code == 0, done.err
    # Written into the existing SYSPREP directory, whatever the case of its name.
    data = fat_read(_flat(run_cli, "desk01", tmp_path), partition, "/SYSPREP/SYSPREP.INF")
    assert data is not None and b"\r\n" in data
    inf = configparser.ConfigParser(interpolation=None)
    inf.optionxform = str
    inf.read_string(data.decode())
    assert inf["UserData"]["ComputerName"] == "DESK01"
    assert inf["GuiUnattended"]["AdminPassword"] == f'"{ADMIN_PASSWORD}"'
    assert inf["GuiUnattended"]["EncryptedAdminPassword"] == "NO"
    assert inf["GuiUnattended"]["TimeZone"] == "110"
    assert inf["Unattended"]["OemSkipEula"] == "Yes"
    assert dict(inf["Identification"]) == {"JoinDomain": "corp.example.com", "DomainAdmin": "CORP\\joiner",
                                           "DomainAdminPassword": f'"{JOIN_PASSWORD}"'}
    assert inf["Networking"]["InstallDefaultComponents"] == "No"
    assert inf["NetProtocols"]["MS_TCPIP"] == "params.MS_TCPIP"
    adapter = inf[inf["params.MS_TCPIP"]["AdapterSections"]]
    assert dict(adapter) == {"SpecificTo": "Adapter1", "DHCP": "No", "IPAddress": "192.0.2.20",
                             "SubnetMask": "255.255.255.0", "DefaultGateway": "192.0.2.1",
                             "DNSServerSearchOrder": "192.0.2.53"}
    for run in run_cli.runs:
        assert ADMIN_PASSWORD not in run.out + run.err and JOIN_PASSWORD not in run.out + run.err
    for path in home.rglob("*"):
        if path.is_file() and not path.is_relative_to(home / "pool"):
            assert ADMIN_PASSWORD.encode() not in path.read_bytes(), path

    assert run_cli("uncustomize", "desk01").code == 0
    assert fat_read(_flat(run_cli, "desk01", tmp_path), partition, "/SYSPREP/SYSPREP.INF") is None


def test_setup_complete_and_errors(run_cli, home: Path, tmp_path: Path) -> None:
    disk = tmp_path / "win.raw"
    make_disk(disk, "fat", None, {"/Windows/System32": None})
    assert run_cli("master", "import", "win", disk).code == 0
    # A password item must be secret: its value would otherwise be stored.
    refused = run_cli("master", "items", "add", "win", "pw", "--type", "sysprep", "--path",
                      "/Windows/Panther/unattend.xml", "--param", "setting=admin-password")
    _one_line_error(refused, "admin-password is a password", "--secret")
    refused = run_cli("master", "items", "add", "win", "lang", "--type", "sysprep", "--path",
                      "/sysprep/sysprep.inf", "--param", "setting=locale")
    _one_line_error(refused, "locale cannot go into sysprep.inf")
    for args in (("name", "--param", "setting=computer-name", "--path", "/Windows/Panther/unattend.xml"),
                 ("account", "--param", "setting=local-account", "--secret", "--path",
                  "/Windows/Panther/unattend.xml"),
                 ("setup-complete", "--path", "/Windows/Setup/Scripts/SetupComplete.cmd")):
        added = run_cli("master", "items", "add", "win", args[0], "--type", "sysprep", *args[1:])
        assert added.code == 0, added.err
    assert run_cli("clone", "win", "w1").code == 0

    bad = run_cli("customize", "w1", "--set", "name=NOT_A_NETBIOS_NAME", "--set", "account=NoColonHere",
                  "--set", "setup-complete=echo done")
    line = _one_line_error(bad)
    assert "NOT_A_NETBIOS_NAME" in line and "NetBIOS" in line
    bad = run_cli("customize", "w1", "--set", "name=W1", "--set", "account=NoColonHere",
                  "--set", "setup-complete=echo done")
    line = _one_line_error(bad, "NAME:PASSWORD")
    assert "NoColonHere" not in line  # a secret's value is never quoted
    # Refused before the clone was touched: it is still ready, nothing applied.
    shown = json.loads(run_cli("image", "show", "w1", "--json").out)
    assert shown["state"] == "ready" and not shown["applied"]

    script = tmp_path / "setup.cmd"
    script.write_text("netsh advfirewall set allprofiles state on\nshutdown /r /t 0\n")
    done = run_cli("customize", "w1", "--set", "name=W1", "--set", "account=ops:0ps-Pass",
                   "--set-file", f"setup-complete={script}")
    assert done.code == 0, done.err
    flat = _flat(run_cli, "w1", tmp_path)
    assert fat_read(flat, None, "/Windows/Setup/Scripts/SetupComplete.cmd") == (
        b"@echo off\r\nrem Made by Encompass (sysprep plugin)\r\n"
        b"netsh advfirewall set allprofiles state on\r\nshutdown /r /t 0\r\n")
    answer = fat_read(flat, None, "/Windows/Panther/unattend.xml")
    assert b"<ComputerName>W1</ComputerName>" in answer and b"<Name>ops</Name>" in answer
    assert b"0ps-Pass" not in answer
    assert run_cli("uncustomize", "w1").code == 0
    flat = _flat(run_cli, "w1", tmp_path)
    assert fat_read(flat, None, "/Windows/Setup/Scripts/SetupComplete.cmd") is None
    assert fat_read(flat, None, "/Windows/Panther/unattend.xml") is None
