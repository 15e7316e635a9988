"""The lab: a physical machine is a QEMU guest a management peer powers on and off. Powered on,
it boots what its boot order names (its LUN 0 over iSCSI, as its own initiator); it keeps its
identity across power cycles; every QEMU dies with the process that started it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from encompass_core.testing.demo import cached_demo_master
from encompass_core.testing.lab import Lab, LabError, LabMachine, identity_for
from encompass_core.testing.tgt import running_tgtd

if shutil.which("qemu-system-x86_64") is None:
    pytest.skip("qemu-system-x86_64 is not installed", allow_module_level=True)


@pytest.fixture
def lab(tmp_path: Path):
    with Lab(tmp_path / "lab") as made:
        yield made


def qemu_arguments(machine: LabMachine) -> list[str]:
    pid = int(__import__("json").loads((machine.directory / "power.json").read_text())["pid"])
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


def test_a_machine_powers_on_and_off_and_keeps_its_identity(lab):
    blade = lab.add("blade1", boot_order=("none",))
    assert blade.power_state() == "off"
    identity = blade.identity

    assert blade.power_on() == "on" and blade.power_state() == "on"
    arguments = " ".join(qemu_arguments(blade))
    assert f"uuid={identity.uuid}" in arguments and f"serial={identity.serial}" in arguments
    assert f"mac={identity.mac}" in arguments
    first = qemu_arguments(blade)
    assert blade.power_on() == "on"  # already on: the same QEMU
    assert qemu_arguments(blade) == first

    assert blade.power_off() == "off" and blade.power_state() == "off"
    assert blade.power_off() == "off"  # already off: not an error
    again = lab.add("blade1", boot_order=("san",))  # exists: kept as it was
    assert again.identity == identity == identity_for("blade1")
    assert again.settings.boot_order == ("none",)
    assert lab.add("blade2").identity.uuid != identity.uuid


def test_reset_starts_the_machine_anew_and_close_stops_every_machine(tmp_path):
    with Lab(tmp_path / "lab") as lab:
        blades = [lab.add(f"blade{slot}", boot_order=("none",)) for slot in (1, 2)]
        blades[0].power_on()
        before = (blades[0].directory / "power.json").read_text()
        assert blades[0].reset() == "on"
        assert (blades[0].directory / "power.json").read_text() != before
        assert blades[1].reset() == "on"  # a machine that was off comes on
    assert [blade.power_state() for blade in blades] == ["off", "off"]


def test_a_bad_boot_device_is_refused(lab):
    with pytest.raises(LabError, match="unknown boot device 'floppy'"):
        lab.add("blade1", boot_order=("floppy",))
    blade = lab.add("blade1")
    with pytest.raises(LabError, match="unknown boot device"):
        blade.set_boot_order(["san", "tape"])
    assert blade.settings.boot_order == ("san",)


def test_a_qemu_dies_with_the_process_that_started_it(lab):
    lab.add("blade1", boot_order=("none",))
    starter = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom encompass_core.testing.lab import LabMachine\n"
         f"LabMachine({str(lab.directory / 'blade1')!r}).power_on()\nprint('on', flush=True)\n"
         "time.sleep(600)"], stdout=subprocess.PIPE, text=True)
    assert starter.stdout.readline().strip() == "on"
    blade = lab.machine("blade1")
    assert blade.power_state() == "on"
    os.kill(starter.pid, signal.SIGKILL)
    starter.wait()
    deadline = time.monotonic() + 15
    while blade.power_state() == "on" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert blade.power_state() == "off"


def test_a_machine_with_no_lun_mapped_finds_no_disk_and_says_so(lab, tmp_path):
    with running_tgtd(tmp_path) as tgtd:
        blade = lab.add("blade1", san_portal=tgtd.portal)
        blade.power_on()
        assert blade.power_state() == "on"
        blade.power_off()
    assert f"no LUN is mapped to {blade.identity.initiator}" in blade.log.read_text()


@pytest.mark.slow
def test_a_blade_boots_its_lun_0_over_iscsi_as_its_own_initiator(lab, tmp_path):
    master = cached_demo_master()
    disk = tmp_path / "web01.raw"
    shutil.copyfile(master.disk, disk)
    with running_tgtd(tmp_path) as tgtd:
        blade = lab.add("blade3", san_portal=tgtd.portal, boot_order=("network", "san"))
        # The SAN maps the disk to the blade's host only (as the ds4xxx simulator and the local
        # pool's export do: tgt's LUN 1 is the host's LUN 0).
        tgtd.tgtadm("--op", "new", "--mode", "target", "--tid", "1", "-T", "iqn.2026-12.org.test:blade3")
        tgtd.tgtadm("--op", "new", "--mode", "logicalunit", "--tid", "1", "--lun", "1", "-b", str(disk))
        tgtd.tgtadm("--op", "bind", "--mode", "target", "--tid", "1",
                    "--initiator-name", blade.identity.initiator)
        other = lab.add("blade4", san_portal=tgtd.portal)
        other.power_on()
        blade.power_on()
        shown = blade.wait_for_console("encompass-demo: hostname", timeout=240)
        assert "SYSLINUX" in shown  # the firmware booted the LUN
        assert "san iscsi://" in blade.log.read_text()
        assert "no LUN is mapped" in other.log.read_text()  # bound to blade3's initiator only
        deadline = time.monotonic() + 60  # the demo guest powers itself off: the machine is off
        while blade.power_state() == "on" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert blade.power_state() == "off"
        lab.close()
