"""Export and import as OVA: a round trip keeps every metadata field; packages that VMware,
VirtualBox and OVF 2.0 tools write import as masters; bad packages are refused in one line."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import tarfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest
from ovf_samples import (
    manifest,
    ovf2_descriptor,
    stream_vmdk,
    virtualbox_descriptor,
    vmware_descriptor,
    write_ova,
)

from conftest import ENCOMPASS, CliResult, assert_one_line_error, cli_env, image_records, volume_path

PASSWORD = "Tr0ub4dor-ova-secret-3x"
OVF = "http://schemas.dmtf.org/ovf/envelope/1"
RASD = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
VSSD = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData"
#: What belongs to a repository rather than to an image (and changes on import by design).
LOCAL = {"state", "owner", "jobs", "machine", "error", "updated"}
LOCAL_VOLUME = {"pool", "location", "backing", "depth", "data", "format", "readonly"}


def disk_with(tmp_path: Path, name: str, files: dict[str, str], size: str = "32M") -> Path:
    """A raw ext4 disk holding ``files`` (path -> text)."""
    tree = tmp_path / f"{name}-tree"
    for path, text in files.items():
        (tree / path.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        (tree / path.lstrip("/")).write_text(text)
    disk = tmp_path / f"{name}.raw"
    subprocess.run(["mke2fs", "-q", "-t", "ext4", "-d", str(tree), str(disk), size], check=True)
    return disk


def other_home(tmp_path: Path, name: str = "home2"):
    """A second, empty repository and a ``run`` for it (another site importing the package)."""
    home = tmp_path / name
    env = cli_env(home)
    assert subprocess.run([str(ENCOMPASS), "init"], env=env, capture_output=True).returncode == 0

    def run(*args: str) -> CliResult:
        done = subprocess.run([str(ENCOMPASS), *map(str, args)], env=env, capture_output=True, text=True,
                              timeout=300)
        return CliResult(done.returncode, done.stdout, done.stderr)
    return run


def portable(doc: dict) -> dict:
    """An image's document without what belongs to the repository holding it."""
    kept = {k: v for k, v in doc.items() if k not in LOCAL}
    kept["volumes"] = [{k: v for k, v in volume.items() if k not in LOCAL_VOLUME}
                       for volume in doc["volumes"]]
    return kept


def members(ova: Path) -> list[tuple[str, bytes]]:
    with tarfile.open(ova) as archive:
        return [(info.name, archive.extractfile(info).read()) for info in archive.getmembers()]


def same_disk(left: Path, right: Path) -> bool:
    return subprocess.run(["qemu-img", "compare", "-q", str(left), str(right)]).returncode == 0


class Exported(NamedTuple):
    """A repository with a customized clone, and the OVAs exported from it."""

    run: Callable[..., CliResult]  # the CLI in that repository
    master_ova: Path  # master 'base'
    clone_ova: Path  # clone 'web01', --with-lineage


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Exported:
    """Master 'base' (debian 12, 2 CPUs, 1 GiB, UEFI) with a hostname item and a secret item;
    clone 'web01' customized with both; each exported (the clone --with-lineage). Made once
    for the tests that only read it: customizing is the slow part."""
    tmp = tmp_path_factory.mktemp("exported")
    run = other_home(tmp, "home")
    disk = disk_with(tmp, "base", {"/etc/hostname": "master\n", "/etc/rootpw": "master-password\n"})
    assert run("master", "import", "base", disk, "--hw", "cpus=2", "--hw", "memory=1G", "--hw",
               "firmware=uefi", "--hw", "platforms=kvm,esx", "--hw", "rack=r7", "--sw", "os=debian",
               "--sw", "version=12", "--sw", "description=web server").code == 0
    assert run("master", "items", "add", "base", "hostname", "--type", "file", "--path",
               "/etc/hostname", "--description", "the host's name").code == 0
    assert run("master", "items", "add", "base", "rootpw", "--type", "file", "--path", "/etc/rootpw",
               "--secret", "--param", "mode=0600").code == 0
    assert run("clone", "base", "web01").code == 0
    done = run("customize", "web01", "--set", "hostname=web01", "--set", f"rootpw={PASSWORD}")
    assert done.code == 0, done.err
    master_ova, clone_ova = tmp / "base.ova", tmp / "web01.ova"
    done = run("export", "base", master_ova)
    assert done.code == 0, done.err
    assert "exported 'base'" in done.err
    assert run("export", "web01", clone_ova, "--with-lineage").code == 0
    return Exported(run, master_ova, clone_ova)


def test_round_trip_keeps_every_field_and_the_disk(exported, tmp_path):
    run_cli, customized = exported.run, "web01"
    # The image went back to where it was, and the export is in its history.
    assert image_records(run_cli)[customized]["state"] == "ready"
    history = run_cli("image", "history", customized, "--json").json()
    assert [(e["from_state"], e["to_state"]) for e in history[-2:]] == [("ready", "exporting"),
                                                                       ("exporting", "ready")]

    elsewhere = other_home(tmp_path)
    for ova in (exported.master_ova, exported.clone_ova):
        imported = elsewhere("import", ova)
        assert imported.code == 0, imported.err
        assert "from an Encompass package" in imported.err
    for name in ("base", customized):
        before = run_cli("image", "show", name, "--json").json()
        after = elsewhere("image", "show", name, "--json").json()
        assert portable(after) == portable(before)
        assert after["state"] == "ready"
        assert same_disk(volume_path(run_cli, name), volume_path(elsewhere, name))
    clone = elsewhere("image", "show", customized, "--json").json()
    assert clone["inputs"] == {"hostname": "web01"}  # the secret was never stored, nor exported
    assert elsewhere("image", "cat", customized, "/etc/hostname").out == "web01\n"
    # --with-lineage carried the history: the customization is there, then the import.
    steps = [e["operation"] for e in elsewhere("image", "history", customized, "--json").json()]
    assert steps[:2] == ["clone", "clone"] and "customize" in steps and "export" not in steps
    assert steps[-2:] == ["import", "import"]
    # The clone works on the other side: un-customized with its master's items and defaults.
    assert elsewhere("uncustomize", customized).code == 0
    assert elsewhere("image", "cat", customized, "/etc/hostname").out == "master\n"


def test_the_package_is_a_dsp0243_ova_without_secrets(exported, tmp_path):
    run_cli, customized, ova = exported.run, "web01", exported.clone_ova

    names = [name for name, _data in members(ova)]
    assert names == ["web01.ovf", "web01-disk0.vmdk", "web01.mf"]  # descriptor first
    with tarfile.open(ova) as archive:
        assert all(info.isreg() and info.mode == 0o644 for info in archive.getmembers())
    content = dict(members(ova))
    listed = dict(line.split("= ") for line in content["web01.mf"].decode().splitlines())
    assert listed == {f"SHA256({name})": hashlib.sha256(content[name]).hexdigest()
                      for name in ("web01.ovf", "web01-disk0.vmdk")}
    descriptor = tmp_path / "web01.ovf"
    descriptor.write_bytes(content["web01.ovf"])
    lint = subprocess.run(["xmllint", "--noout", str(descriptor)], capture_output=True, text=True)
    assert lint.returncode == 0, lint.stderr
    assert PASSWORD.encode() not in content["web01.ovf"]

    root = ET.fromstring(content["web01.ovf"])
    assert root.tag == f"{{{OVF}}}Envelope"
    disk = root.find(f"{{{OVF}}}DiskSection/{{{OVF}}}Disk")
    assert disk.get(f"{{{OVF}}}capacity") == str(32 << 20)
    assert disk.get(f"{{{OVF}}}capacityAllocationUnits") == "byte"
    assert disk.get(f"{{{OVF}}}format").endswith("vmdk.html#streamOptimized")
    hardware = root.find(f"{{{OVF}}}VirtualSystem/{{{OVF}}}VirtualHardwareSection")
    assert hardware.find(f"{{{OVF}}}System/{{{VSSD}}}VirtualSystemType").text.startswith("vmx-")
    quantity = {item.findtext(f"{{{RASD}}}ResourceType"): item.findtext(f"{{{RASD}}}VirtualQuantity")
                for item in hardware.findall(f"{{{OVF}}}Item")}
    assert quantity["3"] == "2" and quantity["4"] == "1024"
    vmware = "http://www.vmware.com/schema/ovf"
    assert [(c.get(f"{{{vmware}}}key"), c.get(f"{{{vmware}}}value"))
            for c in hardware.iter(f"{{{vmware}}}Config")] == [("firmware", "efi")]  # the UEFI profile
    disk_item = next(i for i in hardware.findall(f"{{{OVF}}}Item")
                     if i.findtext(f"{{{RASD}}}ResourceType") == "17")
    assert disk_item.findtext(f"{{{RASD}}}HostResource") == f"ovf:/disk/{disk.get(f'{{{OVF}}}diskId')}"
    section = root.find(f"{{{OVF}}}VirtualSystem/{{urn:encompass:ovf:1}}EncompassSection")
    assert section.get(f"{{{OVF}}}required") == "false"
    carried = {e.get("{urn:encompass:ovf:1}role"): json.loads(e.text)
               for e in section.findall("{urn:encompass:ovf:1}Image")}
    assert carried["image"]["inputs"] == {"hostname": "web01"}
    assert [item["key"] for item in carried["master"]["items"]] == ["hostname", "rootpw"]
    assert "state" not in carried["image"] and "location" not in carried["image"]["volumes"][0]
    # The disk is a stream-optimized VMDK holding the clone's disk.
    vmdk = tmp_path / "disk.vmdk"
    vmdk.write_bytes(content["web01-disk0.vmdk"])
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(vmdk)], check=True,
                                     capture_output=True, text=True).stdout)
    assert info["format"] == "vmdk" and info["format-specific"]["data"]["create-type"] == "streamOptimized"
    assert same_disk(volume_path(run_cli, customized), vmdk)


def test_a_master_of_two_volumes_and_formats_comes_back_whole(run_cli, tmp_path):
    system = disk_with(tmp_path, "system", {"/etc/hostname": "two\n"})
    data = tmp_path / "data.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(data), "16M"], check=True)
    subprocess.run(["qemu-io", "-c", "write -P 0x5a 1M 2M", str(data)], check=True, capture_output=True)
    assert run_cli("master", "import", "two", system, data).code == 0
    ova = tmp_path / "two.ova"

    exported = run_cli("export", "two", ova, "--json")
    assert exported.code == 0, exported.err
    assert exported.json()["disks"] == ["two-disk0.vmdk", "two-disk1.vmdk"]
    imported = run_cli("import", ova, "--name", "two-copy", "--json")

    assert imported.code == 0, imported.err
    copy = imported.json()
    assert [v["index"] for v in copy["volumes"]] == [0, 1]
    assert [v["size"] for v in copy["volumes"]] == [32 << 20, 16 << 20]
    assert copy["kind"] == "master" and all(v["readonly"] for v in copy["volumes"])
    for index in (0, 1):
        assert same_disk(volume_path(run_cli, "two", index), volume_path(run_cli, "two-copy", index))


def test_a_clone_comes_back_as_a_master_with_its_masters_items(exported, tmp_path):
    ova = exported.clone_ova
    elsewhere = other_home(tmp_path)

    refused = elsewhere("import", ova, "--as", "clone", "--name", "bad name")
    assert_one_line_error(refused, "invalid image name")
    done = elsewhere("import", ova, "--as", "master", "--name", "web-golden")
    assert done.code == 0, done.err
    golden = elsewhere("image", "show", "web-golden", "--json").json()
    assert golden["kind"] == "master" and golden["version"] == 1 and golden["master"] is None
    assert [item["key"] for item in golden["items"]] == ["hostname", "rootpw"]
    assert golden["inputs"] == {} and golden["hardware"]["cpus"] == 2
    assert elsewhere("clone", "web-golden", "web02").code == 0
    assert elsewhere("customize", "web02", "--set", "hostname=web02", "--set", "rootpw=x").code == 0
    assert elsewhere("image", "cat", "web02", "/etc/hostname").out == "web02\n"


def test_a_vmware_ova_imports_as_a_master_with_its_hardware(run_cli, tmp_path):
    disk = disk_with(tmp_path, "vmw", {"/etc/hostname": "vmware-appliance\n"}, size="1G")
    vmdk = stream_vmdk(disk, tmp_path / "appliance-disk1.vmdk")
    descriptor = vmware_descriptor("Debian 11 Appliance", vmdk.name, vmdk.stat().st_size, 1, 4,
                                   8192).encode()
    ova = write_ova(tmp_path / "appliance.ova", [
        ("appliance.ovf", descriptor),
        ("appliance.mf", manifest({"appliance.ovf": descriptor, vmdk.name: vmdk}, "SHA1")),
        (vmdk.name, vmdk)])

    done = run_cli("import", ova)

    assert done.code == 0, done.err
    assert "from a VMware package" in done.err
    image = run_cli("image", "show", "debian-11-appliance", "--json").json()
    assert image["kind"] == "master" and image["version"] == 1
    hardware = image["hardware"]
    assert (hardware["cpus"], hardware["memory_mib"], hardware["firmware"], hardware["arch"]) == (
        4, 8192, "uefi", "x86_64")
    assert hardware["extra"]["virtual-system-type"] == "vmx-13"
    config = hardware["extra"]["vmware-config"]
    assert config["svga.autodetect"] == "TRUE"
    assert not any(key.startswith("guestinfo.") for key in config)  # a deployment's data, maybe secret
    assert image["software"]["extra"]["vmware-os-type"] == "debian11_64Guest"
    assert image["software"]["description"] == "Debian 11 appliance exported from vSphere"
    assert image["volumes"][0]["size"] == 1 << 30
    assert same_disk(disk, volume_path(run_cli, "debian-11-appliance"))
    assert run_cli("image", "cat", "debian-11-appliance", "/etc/hostname").out == "vmware-appliance\n"


def test_a_virtualbox_ova_imports_its_disks_in_port_order(run_cli, tmp_path):
    first = disk_with(tmp_path, "sys", {"/etc/hostname": "vbox\n"})
    second = disk_with(tmp_path, "data", {"/data/readme": "data volume\n"}, size="16M")
    # DiskSection lists the data disk first; the SATA ports put the system disk at port 0.
    vmdks = [stream_vmdk(second, tmp_path / "vbox-disk001.vmdk"),
             stream_vmdk(first, tmp_path / "vbox-disk002.vmdk")]
    capacities = [(v.name, s.stat().st_size) for v, s in zip(vmdks, (second, first), strict=True)]
    descriptor = virtualbox_descriptor("vbox-vm", capacities, 2, 2048).encode()
    ova = write_ova(tmp_path / "vbox.ova", [
        ("vbox.ovf", descriptor), *[(v.name, v) for v in vmdks],
        ("vbox.mf", manifest({"vbox.ovf": descriptor, **{v.name: v for v in vmdks}}, spaced=True))])

    done = run_cli("import", ova, "--name", "vbox")

    assert done.code == 0, done.err
    assert "from a VirtualBox package" in done.err
    image = run_cli("image", "show", "vbox", "--json").json()
    hardware = image["hardware"]
    assert (hardware["cpus"], hardware["memory_mib"], hardware["firmware"]) == (2, 2048, "uefi")
    assert image["software"]["extra"]["virtualbox-os-type"] == "Debian_64"
    assert same_disk(first, volume_path(run_cli, "vbox", 0))
    assert same_disk(second, volume_path(run_cli, "vbox", 1))


def test_an_ovf2_descriptor_with_its_disk_beside_it(run_cli, tmp_path):
    folder = tmp_path / "package"
    folder.mkdir()
    disk = disk_with(tmp_path, "router", {"/etc/hostname": "router\n"}, size="48M")
    vmdk = stream_vmdk(disk, folder / "router-disk1.vmdk")
    (folder / "router.ovf").write_text(ovf2_descriptor("Router", vmdk.name, 48, 1, 2048))

    done = run_cli("import", folder / "router.ovf")

    assert done.code == 0, done.err
    image = run_cli("image", "show", "router", "--json").json()
    assert (image["hardware"]["cpus"], image["hardware"]["memory_mib"]) == (1, 2048)
    assert image["software"]["description"] == "Example Router"
    assert image["software"]["version"] == "2.0.1"
    assert image["volumes"][0]["size"] == 48 << 20
    assert same_disk(disk, volume_path(run_cli, "router"))


# -- refusals --------------------------------------------------------------------------------


@pytest.fixture
def our_ova(run_cli, master, tmp_path) -> Path:
    ova = tmp_path / "base.ova"
    assert run_cli("export", master, ova).code == 0
    return ova


def repacked(tmp_path: Path, ova: Path, change, remanifest: bool = True) -> Path:
    """``ova`` rewritten with ``change(name, data) -> (name, data)`` applied to each member; its
    manifest made again to match (whoever altered the package could do that too) unless
    ``remanifest`` is false."""
    changed = [change(name, data) for name, data in members(ova)]
    if remanifest:
        files = {name: data for name, data in changed if not name.endswith(".mf")}
        changed = [(name, manifest(files) if name.endswith(".mf") else data) for name, data in changed]
    return write_ova(tmp_path / "changed.ova", changed)


def assert_nothing_recorded(run_cli) -> None:
    assert sorted(image_records(run_cli)) == ["base"]


def test_a_digest_mismatch_is_refused(run_cli, our_ova, tmp_path):
    def flip(name: str, data: bytes) -> tuple[str, bytes]:
        if name.endswith(".vmdk"):
            data = data[:-600] + bytes([data[-600] ^ 0xFF]) + data[-599:]
        return name, data

    refused = run_cli("import", repacked(tmp_path, our_ova, flip, remanifest=False), "--name", "copy")
    assert_one_line_error(refused, "base-disk0.vmdk", "does not match its SHA256 digest", "refused")
    assert refused.code == 2
    assert_nothing_recorded(run_cli)


def test_a_reference_outside_the_package_is_refused(run_cli, our_ova, tmp_path):
    for href in ("../../etc/passwd", "/etc/passwd", "sub/../../x.vmdk", "http://example.com/disk.vmdk"):
        def retarget(name: str, data: bytes, href=href) -> tuple[str, bytes]:
            if name.endswith(".ovf"):
                data = data.replace(b'ovf:href="base-disk0.vmdk"', f'ovf:href="{href}"'.encode())
            return name, data

        refused = run_cli("import", repacked(tmp_path, our_ova, retarget), "--name", "copy")
        assert_one_line_error(refused, href, "outside the package")
    # A member of the archive itself named to leave it (what tar would extract out of place).
    write_ova(tmp_path / "evil.ova", [("evil.ovf", dict(members(our_ova))["base.ovf"]),
                                      ("../evil.vmdk", b"x")])
    assert_one_line_error(run_cli("import", tmp_path / "evil.ova"), "../evil.vmdk", "outside the package")
    # A member that is a link (to a file of this host) is no file of the package.
    with tarfile.open(tmp_path / "link.ova", "w", format=tarfile.USTAR_FORMAT) as archive:
        descriptor = dict(members(our_ova))["base.ovf"]
        info = tarfile.TarInfo("base.ovf")
        info.size = len(descriptor)
        archive.addfile(info, io.BytesIO(descriptor))
        link = tarfile.TarInfo("base-disk0.vmdk")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/shadow"
        archive.addfile(link)
    assert_one_line_error(run_cli("import", tmp_path / "link.ova"), "base-disk0.vmdk", "not links")
    assert_nothing_recorded(run_cli)


def test_an_ovf_beside_a_symlink_out_of_its_folder_is_refused(run_cli, tmp_path):
    folder = tmp_path / "package"
    folder.mkdir()
    outside = stream_vmdk(disk_with(tmp_path, "secret", {"/x": "y\n"}), tmp_path / "outside.vmdk")
    (folder / "disk.vmdk").symlink_to(outside)
    (folder / "p.ovf").write_text(ovf2_descriptor("p", "disk.vmdk", 32, 1, 1024))

    refused = run_cli("import", folder / "p.ovf")
    assert_one_line_error(refused, "disk.vmdk", "outside the package")


@pytest.mark.parametrize("case", ["vhd format", "qcow2 inside", "flat vmdk"])
def test_an_unsupported_disk_format_is_refused(run_cli, master, tmp_path, case):
    folder = tmp_path / "package"
    folder.mkdir()
    disk = disk_with(tmp_path, "d", {"/x": "y\n"})
    descriptor = ovf2_descriptor("p", "disk.vmdk", 32, 1, 1024)
    if case == "vhd format":
        stream_vmdk(disk, folder / "disk.vmdk")
        descriptor = descriptor.replace("vmdk.html#streamOptimized", "vhd.html")
        words = ("format", "vhd.html", "stream-optimized or sparse VMDK")
    elif case == "qcow2 inside":
        subprocess.run(["qemu-img", "convert", "-O", "qcow2", str(disk), str(folder / "disk.vmdk")],
                       check=True)
        words = ("disk.vmdk", "not a sparse VMDK")
    else:  # a text descriptor naming an extent: it could name any file of this host
        subprocess.run(["qemu-img", "convert", "-O", "vmdk", "-o", "subformat=monolithicFlat", str(disk),
                        str(folder / "disk.vmdk")], check=True)
        words = ("disk.vmdk", "not a sparse VMDK")
    (folder / "p.ovf").write_text(descriptor)

    refused = run_cli("import", folder / "p.ovf")
    assert_one_line_error(refused, *words)
    assert refused.code in (2, 4)
    assert_nothing_recorded(run_cli)


def test_a_descriptor_with_a_doctype_is_refused(run_cli, our_ova, tmp_path):
    def entity(name: str, data: bytes) -> tuple[str, bytes]:
        if name.endswith(".ovf"):
            doctype = b'<!DOCTYPE Envelope [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            data = data.replace(b"?>", b"?>\n" + doctype, 1)
            data = data.replace(b"<Name>base</Name>", b"<Name>&x;</Name>")
        return name, data

    refused = run_cli("import", repacked(tmp_path, our_ova, entity), "--name", "copy")
    assert_one_line_error(refused, "document type", "refused")
    assert_nothing_recorded(run_cli)


def test_a_package_cannot_claim_a_machine_or_a_state(run_cli, our_ova, tmp_path):
    def claim(name: str, data: bytes) -> tuple[str, bytes]:
        if name.endswith(".ovf"):
            data = data.replace(b'{"applied"', b'{"machine": "vm7", "state": "deployed", "error": "x", '
                                b'"owner": {"pid": 1}, "applied"', 1)
        return name, data

    done = run_cli("import", repacked(tmp_path, our_ova, claim), "--name", "copy", "--json")
    assert done.code == 0, done.err
    image = done.json()
    assert (image["state"], image["machine"], image["error"], image["owner"]) == ("ready", None, None, None)


def test_foreign_packages_are_not_clones(run_cli, tmp_path):
    folder = tmp_path / "package"
    folder.mkdir()
    stream_vmdk(disk_with(tmp_path, "d", {"/x": "y\n"}), folder / "disk.vmdk")
    (folder / "p.ovf").write_text(ovf2_descriptor("p", "disk.vmdk", 32, 1, 1024))
    refused = run_cli("import", folder / "p.ovf", "--as", "clone")
    assert_one_line_error(refused, "only a clone exported by Encompass", "--as master")


def test_export_refuses_to_overwrite_and_wants_an_ova(run_cli, our_ova, master, tmp_path):
    before = our_ova.stat().st_mtime_ns
    refused = run_cli("export", master, our_ova)
    assert_one_line_error(refused, str(our_ova), "exists already", "--force")
    assert our_ova.stat().st_mtime_ns == before
    assert_one_line_error(run_cli("export", master, tmp_path / "base.tar"), "NAME.ova")
    assert_one_line_error(run_cli("export", "nosuch", tmp_path / "x.ova"), "nosuch")
    assert run_cli("export", master, our_ova, "--force").code == 0
    assert image_records(run_cli)[master]["state"] == "ready"


# -- a killed export -------------------------------------------------------------------------


def test_a_killed_export_leaves_no_file_and_repair_puts_the_image_back(run_cli, encompass_home, tmp_path):
    disk = tmp_path / "big.raw"
    with disk.open("wb") as out:  # incompressible data: the VMDK's deflate takes a while
        for _ in range(24):
            out.write(os.urandom(4 << 20))
    assert run_cli("master", "import", "big", disk).code == 0
    target = tmp_path / "out"
    target.mkdir()

    process = subprocess.Popen([str(ENCOMPASS), "export", "big", str(target / "big.ova")],
                               env=cli_env(encompass_home), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not _children_named(process.pid, "qemu-img"):
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < deadline, "qemu-img never started"
        time.sleep(0.05)
    assert image_records(run_cli)["big"]["state"] == "exporting"
    process.send_signal(signal.SIGKILL)
    process.wait()

    repaired = run_cli("repair")
    assert repaired.code == 0, repaired.err
    assert image_records(run_cli)["big"]["state"] == "ready"
    assert os.listdir(target) == []  # no half-written OVA, under any name
    deadline = time.monotonic() + 15  # qemu-img got SIGTERM when its parent died
    while _qemu_img_writing_for(process.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _qemu_img_writing_for(process.pid)
    last = run_cli("image", "history", "big", "--json").json()[-1]
    assert (last["from_state"], last["to_state"], last["kind"]) == ("exporting", "ready", "repair")


def _children_named(pid: int, name: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            command = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        parent = int(stat[stat.rfind(")") + 2:].split()[1])
        if name.encode() in command and (parent == pid or _parent_of(parent) == pid):
            found.append(int(entry))
    return found


def _parent_of(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return -1
    return int(stat[stat.rfind(")") + 2:].split()[1])


def _qemu_img_writing_for(pid: int) -> list[str]:
    """qemu-img processes writing into an unnamed file of process ``pid``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                command = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if b"qemu-img" in command and f"/proc/{pid}/fd/".encode() in command:
                found.append(entry)
    return found


# -- what the Encompass section carries --------------------------------------------------------


def test_every_field_of_the_model_but_the_repositorys_own_is_carried():
    """Fields added to the model later travel without a change here: the section is the store's
    document of the image, less what belongs to the repository."""
    import attrs

    from encompass_core.convert import to_document
    from encompass_core.model import CustomizationItem, Image, Volume
    from encompass_core.ovf import metadata

    items = (CustomizationItem(key="hostname", type="file", path="/etc/hostname"),
             CustomizationItem(key="rootpw", type="file", path="/etc/rootpw", secret=True))
    master = Image(name="base", kind="master", state="ready", version=3, items=items)
    parent = Image(name="web", kind="clone", state="ready", master="base", parent="base", master_version=3,
                   inputs={"hostname": "web"})
    clone = Image(name="web01", kind="clone", state="deployed", master="base", parent="web",
                  master_version=3, machine="vm7", making="web01.v4",  # names this repository's storage
                  inputs={"hostname": "web01", "rootpw": PASSWORD},  # a secret stored by mistake
                  volumes=(Volume(index=0, pool="local", format="qcow2", location="/pool/web01/vol0.qcow2",
                                  size=1 << 30, backing=("web", 0), depth=2, data={"wwn": "x"}),))

    carried = metadata.carry(clone, master, [parent])

    image_fields = {field.name for field in attrs.fields(Image)}
    assert set(carried.image) == image_fields - metadata.local_fields()
    assert metadata.local_fields() >= metadata.LOCAL_FIELDS and "volumes" not in metadata.local_fields()
    assert not {"machine", "making"} & set(carried.image)
    volume_fields = {field.name for field in attrs.fields(Volume)}
    assert set(carried.image["volumes"][0]) == volume_fields - metadata.LOCAL_VOLUME_FIELDS
    assert carried.image["inputs"] == {"hostname": "web01"}
    assert PASSWORD not in json.dumps([carried.image, carried.master, *carried.ancestors])
    assert [item["key"] for item in carried.master["items"]] == ["hostname", "rootpw"]
    assert [a["name"] for a in carried.ancestors] == ["web"] and carried.ancestors[0]["volumes"] == []

    made = {"index": 0, "pool": "other", "format": "raw", "location": "/x", "size": 1 << 30}
    restored = metadata.restore_image(carried.image, "test", state="ready",
                                      volumes=[metadata.merge_volume(carried.image["volumes"][0], made)])
    back = to_document(restored)
    assert {k: v for k, v in back.items() if k not in metadata.local_fields() | {"volumes"}} == {
        k: v for k, v in carried.image.items() if k != "volumes"}
    assert (back["volumes"][0]["pool"], back["volumes"][0]["backing"]) == ("other", None)
