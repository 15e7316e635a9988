"""What machines and the utility server see: a LUN mapping on the subsystem is exactly what
that host's iSCSI initiator finds on the portal (checked with libiscsi's tools and qemu-img)."""

from __future__ import annotations

import json
import subprocess

import pytest
from ds4xxx_testing import UTILITY_INITIATOR

from encompass_core.contracts import AttachRequest, CloneProgress
from encompass_core.customization.openers import open_volume
from encompass_core.model import HostPort, Machine
from encompass_core.records import CloneRequest
from encompass_core.testing import SOURCE_FILES, make_source_image

BLADE1 = "iqn.2024-01.org.encompass:blade1"
BLADE2 = "iqn.2024-01.org.encompass:blade2"


def machine(name: str, initiator: str) -> Machine:
    return Machine(name=name, platform="bladecenter", kind="physical",
                   host_ports=(HostPort("iscsi", initiator),))


@pytest.fixture
def master(driver, tmp_path):
    return driver.import_volume("debian", 0, make_source_image(tmp_path / "debian.raw"))


def clone(driver, master, image: str, mode: str = "cow"):
    request = CloneRequest(image=image, index=0, mode=mode, max_depth=8, source_image="debian")
    return driver.clone_volume(master, driver, request, CloneProgress())


def lun_size(attachment) -> int:
    """The virtual size qemu-img reads through the attachment, as the machine's initiator."""
    details = attachment.details
    opts = (f"driver=iscsi,transport=tcp,portal={details['portal']},target={details['target']},"
            f"lun={details['iscsi_lun']},initiator-name={details['initiator']}")
    done = subprocess.run(["qemu-img", "info", "--output=json", "--image-opts", opts],
                          capture_output=True, text=True, check=True, timeout=60)
    return json.loads(done.stdout)["virtual-size"]


def test_a_boot_volume_is_what_the_machine_initiator_sees_and_no_one_else(driver, simulator, master):
    web01 = clone(driver, master, "web01")
    attached = driver.attach(web01, machine("blade1", BLADE1), AttachRequest(kinds=("iscsi",), boot=True))

    assert attached.lun == 0 and attached.boot and attached.kind == "iscsi"
    assert simulator.mappings() == {"web01_0": ("blade1", 0)}
    host = simulator.state()["hosts"]["blade1"]
    assert list(host["ports"]) == [BLADE1]
    # The machine's initiator sees its own target with the logical drive on it (tgt serves
    # SMcli's LUN 0 as iSCSI LUN 1); the utility server and other machines see nothing there.
    seen = simulator.sees(BLADE1)
    assert host["target"] in seen and "Lun:1    Type:DIRECT_ACCESS" in seen
    assert attached.address == f"iscsi://{simulator.portal}/{host['target']}/1"
    assert "DIRECT_ACCESS" not in simulator.sees(BLADE2)
    assert host["target"] not in simulator.sees(UTILITY_INITIATOR)
    assert lun_size(attached) == master.size
    # The vendor's inquiry data, as a host's multipath configuration would match it.
    inquiry = subprocess.run(["iscsi-inq", "-i", BLADE1, attached.address], capture_output=True,
                             text=True, check=True, timeout=30).stdout
    assert "IBM" in inquiry and "1814" in inquiry

    driver.detach(web01, machine("blade1", BLADE1))
    assert simulator.mappings() == {}
    assert "DIRECT_ACCESS" not in simulator.sees(BLADE1)


def test_volumes_of_one_machine_get_their_own_luns_and_hosts_are_made_once(driver, simulator, master):
    blade = machine("blade1", BLADE1)
    boot = clone(driver, master, "web01")
    data = clone(driver, master, "web01data")
    first = driver.attach(boot, blade, AttachRequest(kinds=("iscsi",), boot=True, lun=0))
    second = driver.attach(data, blade, AttachRequest(kinds=("iscsi",)))
    assert (first.lun, second.lun) == (0, 1)
    assert simulator.mappings() == {"web01_0": ("blade1", 0), "web01data_0": ("blade1", 1)}
    assert sorted(simulator.state()["hosts"]) == ["blade1", "encompass-utility"]
    seen = simulator.sees(BLADE1)
    assert "Lun:1    Type:DIRECT_ACCESS" in seen and "Lun:2    Type:DIRECT_ACCESS" in seen
    again = driver.attach(boot, blade, AttachRequest(kinds=("iscsi",), boot=True, lun=0))
    assert again.address == first.address  # attaching twice is the same mapping


def test_expose_maps_to_the_utility_host_only_for_the_operation(driver, simulator, master):
    web01 = clone(driver, master, "web01", "full")
    with driver.expose(web01, writable=True) as ref:
        assert simulator.mappings() == {"web01_0": ("encompass-utility", 0)}
        assert "DIRECT_ACCESS" in simulator.sees(UTILITY_INITIATOR)
        with open_volume(ref, writable=True) as files:
            files.write("/etc/hostname", b"web01\n")
    assert simulator.mappings() == {}
    hosts = simulator.state()["hosts"]
    assert list(hosts) == ["encompass-utility"] and list(hosts["encompass-utility"]["ports"]) == [
        UTILITY_INITIATOR]
    with driver.expose(web01, writable=False) as ref, open_volume(ref, writable=False) as files:
        assert files.read("/etc/hostname") == b"web01\n"
        assert files.read("/etc/motd") == SOURCE_FILES["etc/motd"]


def test_discovery_reports_drives_with_wwn_capacity_owner_and_flashcopy_bases(driver, simulator,
                                                                             master):
    snap = clone(driver, master, "web01", "cow")
    full = clone(driver, master, "web02", "full")
    found = {item.volume.location: item for item in driver.discover()}
    assert set(found) == {"debian_0_RO", "web01_0", "web02_0"}
    by_label = {d["label"]: d for d in simulator.state()["drives"].values()}
    for label, item in found.items():
        drive = by_label[label]
        wwn = ":".join(drive["wwn"][i:i + 2] for i in range(0, 32, 2))
        assert item.volume.data["wwn"] == wwn
        assert item.volume.data["owner"] == drive["owner"]
        assert item.volume.size == drive["capacity"]
    assert (found["web01_0"].image, found["web01_0"].volume.depth, found["web01_0"].backing) == (
        "web01", 1, "debian_0_RO")
    assert found["debian_0_RO"].volume.readonly and not found["web02_0"].volume.readonly
    assert found["web02_0"].volume.depth == 0 and found["web02_0"].backing is None
    assert snap.data["wwn"] == found["web01_0"].volume.data["wwn"]
    assert snap.data["subsystem"] == "DS4700-sim"
    assert full.size == master.size
    # The FlashCopy's repository is the subsystem's business, not a volume of the pool.
    assert "web01_0-R" in by_label and by_label["web01_0-R"]["kind"] == "repository"


def test_a_lun_taken_by_another_process_meanwhile_is_skipped(driver, simulator, master, monkeypatch):
    other = clone(driver, master, "other")
    chosen = []
    free_lun = driver.hosts.free_lun

    def race(profile, host, start=0):
        lun = free_lun(profile, host, start)
        if not chosen:  # another process maps a drive at that very LUN, just before us
            done = simulator.smcli(f'set logicalDrive ["other_0"] logicalUnitNumber={lun} '
                                   f'host="{host}";')
            assert done.returncode == 0, done.stdout
        chosen.append(lun)
        return lun

    monkeypatch.setattr(driver.hosts, "free_lun", race)
    with driver.expose(master, writable=False) as ref, open_volume(ref, writable=False) as files:
        assert files.read("/etc/hostname") == SOURCE_FILES["etc/hostname"]
        assert simulator.mappings() == {"other_0": ("encompass-utility", 0),
                                        "debian_0_RO": ("encompass-utility", 1)}
    assert chosen == [0, 1]
    assert simulator.mappings() == {"other_0": ("encompass-utility", 0)}
    assert other.location == "other_0"


def test_a_virtual_machine_without_an_initiator_name_is_given_one(driver, simulator, master):
    vm = Machine(name="Web01.vm", platform="kvm", kind="virtual")
    web01 = clone(driver, master, "web01")
    attached = driver.attach(web01, vm, AttachRequest(kinds=("iscsi",), boot=True, lun=0))
    initiator = "iqn.2026-12.org.encompass:initiator.web01.vm"
    assert attached.details["initiator"] == initiator
    assert list(simulator.state()["hosts"]["Web01-vm"]["ports"]) == [initiator]
    assert "Lun:1    Type:DIRECT_ACCESS" in simulator.sees(initiator)
    driver.detach(web01, vm)
    assert simulator.mappings() == {}
    # The host the pool made for the VM goes with its last mapping; a declared one stays.
    assert sorted(simulator.state()["hosts"]) == ["encompass-utility"]
