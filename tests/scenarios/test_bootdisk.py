"""The demo master is a whole disk that PC firmware boots: SeaBIOS → syslinux → kernel → the root
found by its label on partition 2, whatever bus the disk is on. No libvirt here: QEMU boots the
disk file itself, after Encompass' own volume access customized the root partition."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from pathlib import Path

import pytest

from encompass_core.customization.access import VolumeRef
from encompass_core.customization.openers import open_volume
from encompass_core.customization.openers.partitions import list_partitions
from encompass_core.testing.demo import cached_demo_master, firmware_boot

QEMU = shutil.which("qemu-system-x86_64")
BOOT_TIMEOUT = 120.0

#: How QEMU attaches the disk: as a virtio disk (a local clone), or on a virtio SCSI bus (as an
#: iSCSI LUN is attached).
BUSES = {
    "virtio": ["-drive", "file={disk},format=raw,if=virtio"],
    "scsi": ["-device", "virtio-scsi-pci,id=scsi0", "-drive", "file={disk},format=raw,if=none,id=d0",
             "-device", "scsi-hd,drive=d0,bus=scsi0.0"],
}


@pytest.fixture(scope="module")
def master():
    return cached_demo_master()


def copy_of(master, folder: Path) -> Path:
    disk = folder / "clone.raw"
    subprocess.run(["cp", "--sparse=always", str(master.disk), str(disk)], check=True)
    return disk


def set_hostname(disk: Path, partition: int, hostname: str) -> None:
    with contextlib.closing(open_volume(VolumeRef(str(disk), "raw", partition), writable=True)) as files:
        files.write("/etc/hostname", f"{hostname}\n".encode())


def boot(disk: Path, bus: str, console: Path, until: str) -> str:
    """Boot ``disk`` on ``bus`` by the firmware until the console shows ``until``."""
    return firmware_boot([arg.format(disk=disk) for arg in BUSES[bus]], console, until, BOOT_TIMEOUT)


def test_the_master_is_a_partitioned_disk_with_the_root_on_partition_2(master):
    partitions = list_partitions(str(master.disk))
    assert [p.number for p in partitions] == [1, 2]
    with open(master.disk, "rb") as disk:
        sector0 = disk.read(512)
    assert sector0[510:] == b"\x55\xaa"
    assert sector0[446] == 0x80, "partition 1 is not marked bootable"
    assert sector0[446 + 4] == 0x0E and sector0[446 + 16 + 4] == 0x83  # FAT16 (LBA), Linux
    boot_sector = master.disk.read_bytes()[partitions[0].offset:partitions[0].offset + 512]
    assert b"SYSLINUX" in boot_sector and boot_sector[54:59] == b"FAT16"
    assert master.root_partition == 2
    with contextlib.closing(open_volume(VolumeRef(str(master.disk), "raw", 2), writable=False)) as files:
        assert files.read("/etc/hostname") == b"master\n"
        assert files.read("/boot/vmlinuz") == master.kernel.read_bytes()


@pytest.mark.skipif(QEMU is None, reason="qemu-system-x86_64 is not installed (qemu-system-x86)")
@pytest.mark.parametrize("bus", ["virtio", pytest.param("scsi", marks=pytest.mark.slow)])
def test_seabios_boots_a_customized_copy_of_the_disk(master, tmp_path, bus):
    disk = copy_of(master, tmp_path)
    set_hostname(disk, master.root_partition, f"bootdisk-{bus}")
    console = tmp_path / "console.log"
    text = boot(disk, bus, console, "encompass-demo: powering off")
    # SeaBIOS writes to the (absent) screen; syslinux, which it started, to the serial port.
    assert "SYSLINUX" in text, text[-2000:]
    assert f"encompass-demo: hostname bootdisk-{bus}" in text, text[-2000:]
    assert "encompass-demo: powering off" in text
    # The master itself was never written: its root still says "master".
    with contextlib.closing(open_volume(VolumeRef(str(master.disk), "raw", 2), writable=False)) as files:
        assert files.read("/etc/hostname") == b"master\n"
