"""A local pool exported over iSCSI through tgt: attaching a volume to a machine serves its file
as a LUN of a target of the machine's own, which only the machine's initiator may log in to;
detaching takes it away. Checked against a real tgtd, read back through QEMU's iSCSI client."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from encompass_core.config import Config, Section
from encompass_core.contracts import AttachRequest
from encompass_core.drivers.local import LocalStorageDriver
from encompass_core.drivers.tgt import parse_show
from encompass_core.errors import ConfigError, DriverError, NotSupported
from encompass_core.model import HostPort, Machine, Volume
from encompass_core.testing.tgt import free_control, running_tgtd

BLADE_INITIATOR = "iqn.1994-05.com.example:blade7"


@pytest.fixture(scope="module")
def tgtd(tmp_path_factory):
    with running_tgtd(tmp_path_factory.mktemp("tgtd")) as daemon:
        yield daemon


def pool(folder: Path, **settings) -> LocalStorageDriver:
    section = Section("lab", "local", {"path": str(folder), **settings})
    return LocalStorageDriver(section, Config(path=folder / "encompass.toml", defaults={},
                                              pools={"lab": section}, platforms={}))


def exported(folder: Path, tgtd) -> LocalStorageDriver:
    return pool(folder, export="iscsi", tgt_control=tgtd.control, iscsi_portal=tgtd.portal)


def raw_volume(folder: Path, name: str = "web01", fmt: str = "raw") -> Volume:
    path = folder / name / f"vol0.{fmt}"
    path.parent.mkdir(parents=True)
    with open(path, "wb") as disk:
        disk.truncate(16 << 20)
        disk.write(b"encompass iscsi export " + name.encode())
    return Volume(index=0, pool="lab", format=fmt, location=str(path), size=16 << 20)


def read_lun(tgtd, target: str, lun: int, initiator: str, out: Path) -> subprocess.CompletedProcess:
    if shutil.which("qemu-img") is None:
        pytest.skip("qemu-img is not installed")
    options = (f"driver=raw,file.driver=iscsi,file.transport=tcp,file.portal={tgtd.portal},"
               f"file.target={target},file.lun={lun},file.initiator-name={initiator}")
    return subprocess.run(["qemu-img", "convert", "--image-opts", options, "-O", "raw", str(out)],
                          capture_output=True, text=True, timeout=60)


def test_attach_serves_the_volume_to_the_machines_initiator_only_and_detach_removes_it(tgtd, tmp_path):
    driver = exported(tmp_path / "pool", tgtd)
    volume = raw_volume(tmp_path / "pool")
    blade = Machine(name="blade7", platform="chassis", host_ports=(HostPort("iscsi", BLADE_INITIATOR),))

    attachment = driver.attach(volume, blade, AttachRequest(kinds=("iscsi", "fc"), boot=True, lun=0))

    target = "iqn.2026-12.org.encompass:lab.blade7"
    assert attachment.kind == "iscsi" and attachment.boot
    assert attachment.address == f"iscsi://{tgtd.portal}/{target}/1"  # tgt keeps LUN 0 for itself
    assert attachment.details["initiator"] == BLADE_INITIATOR
    served = parse_show(tgtd.tgtadm("--op", "show", "--mode", "target"))[target]
    assert served.luns == {1: volume.location} and served.initiators == (BLADE_INITIATOR,)
    assert read_lun(tgtd, target, 1, BLADE_INITIATOR, tmp_path / "seen.raw").returncode == 0
    assert (tmp_path / "seen.raw").read_bytes() == Path(volume.location).read_bytes()
    other = read_lun(tgtd, target, 1, "iqn.1994-05.com.example:intruder", tmp_path / "other.raw")
    assert other.returncode != 0 and "Target not found" in other.stderr

    # Attaching again changes nothing; a second volume is the next LUN of the same target.
    assert driver.attach(volume, blade, AttachRequest(kinds=("iscsi",), boot=True, lun=0)) == attachment
    data = raw_volume(tmp_path / "pool", "web01-data")
    second = driver.attach(data, blade, AttachRequest(kinds=("iscsi",), lun=1))
    assert second.address.endswith(f"/{target}/2")

    driver.detach(volume, blade)
    assert parse_show(tgtd.tgtadm("--op", "show", "--mode", "target"))[target].luns == {2: data.location}
    driver.detach(data, blade)
    driver.detach(data, blade)  # not attached any more: not an error
    assert target not in parse_show(tgtd.tgtadm("--op", "show", "--mode", "target"))


def test_a_machine_without_an_initiator_gets_one_made_for_it(tgtd, tmp_path):
    driver = exported(tmp_path / "pool", tgtd)
    volume = raw_volume(tmp_path / "pool")
    vm = Machine(name="Web_01", platform="kvm")

    attachment = driver.attach(volume, vm, AttachRequest(kinds=("file", "iscsi"), boot=True, lun=0))

    initiator = "iqn.2026-12.org.encompass:initiator.web-01"
    assert attachment.kind == "iscsi" and attachment.details["initiator"] == initiator
    target = attachment.details["target"]
    assert read_lun(tgtd, target, 1, initiator, tmp_path / "seen.raw").returncode == 0
    driver.detach(volume, vm)
    assert target not in parse_show(tgtd.tgtadm("--op", "show", "--mode", "target"))


def test_what_cannot_be_served_is_refused_in_one_line(tgtd, tmp_path):
    driver = exported(tmp_path / "pool", tgtd)
    vm = Machine(name="vm1", platform="kvm")
    overlay = raw_volume(tmp_path / "pool", "cow1", fmt="qcow2")
    with pytest.raises(NotSupported, match=r"serves raw volumes over iSCSI.*clone it with --mode full"):
        driver.attach(overlay, vm, AttachRequest(kinds=("iscsi",), lun=0))
    assert parse_show(tgtd.tgtadm("--op", "show", "--mode", "target")) == {}

    with pytest.raises(ConfigError, match=r"\[pools.lab\] export = \"iscsi\" needs tgt_control"):
        pool(tmp_path / "pool", export="iscsi")
    stopped = pool(tmp_path / "pool", export="iscsi", tgt_control=free_control())
    with pytest.raises(DriverError, match=r"no tgtd answers on control socket .*start it \(tgtd"):
        stopped.attach(raw_volume(tmp_path / "pool", "web02"), vm, AttachRequest(kinds=("iscsi",), lun=0))


def test_a_pool_that_does_not_export_attaches_files(tmp_path):
    driver = pool(tmp_path / "pool")
    volume = raw_volume(tmp_path / "pool")
    attachment = driver.attach(volume, Machine(name="vm1", platform="kvm"),
                               AttachRequest(kinds=("file", "iscsi"), lun=0))
    assert attachment.kind == "file" and attachment.address == volume.location
    assert "iscsi" not in driver.capabilities.attach_kinds
