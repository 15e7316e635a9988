"""NTFS volumes through ntfs-3g: whole images and MBR/GPT partitions, raw and qcow2, names looked
up regardless of case, confinement, and nothing left mounted or running after close.

Each test builds its disk (``sfdisk``, ``mkntfs -F -Q``) and reads back with ``ntfscat``.
Needs root (ntfs-3g mounts) and the Debian packages ntfs-3g, fdisk, qemu-utils,
qemu-system-common, fuse3.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from encompass_core import rundir
from encompass_core.customization.access import VolumeRef
from encompass_core.customization.openers import builtin_openers, open_volume
from encompass_core.customization.openers.ntfs import NtfsAccess, NtfsOpener
from encompass_core.errors import ConfinementError, InvalidInput
from encompass_core.testing.windisks import make_disk, ntfs_read

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="ntfs-3g mounts need root")

WINDOWS_TREE = {
    "/Windows/System32/drivers/etc/hosts": b"127.0.0.1 localhost\r\n",
    "/Windows/Panther": None,
    "/Users/Public/readme.txt": b"public\r\n",
}


def _fuse_mounts() -> list[str]:
    """FUSE mounts left in this process's run directory. The mount table is the whole
    machine's: other pytest-xdist workers' exports, live at that moment, are not this test's."""
    own = str(rundir.current()) + "/"
    with open("/proc/self/mountinfo", encoding="utf-8") as mounts:
        return [line for line in mounts if "fuse" in line and line.split()[4].startswith(own)]


_EARLIER: set[str] = set()  # children this process had before the test (other modules' peers)


@pytest.fixture(autouse=True)
def _earlier_children() -> None:
    """Peers that other test modules started in this process (a pytest-xdist worker runs several
    modules) are not this test's leftovers."""
    _EARLIER.clear()
    _EARLIER.update(_children())


def _helpers() -> list[str]:
    """Commands of this process's children started by the test and still running (ntfs-3g,
    qemu-storage-daemon)."""
    return [command for pid, command in _children().items() if pid not in _EARLIER]


def _children() -> dict[str, str]:
    found = {}
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/stat", encoding="utf-8") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == os.getpid() and fields[0] != "Z":
                with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                    found[pid] = cmdline.read().replace(b"\0", b" ").decode()
        except (OSError, IndexError, ValueError):
            continue
    return found


@pytest.mark.parametrize("scheme", [None, "mbr", "gpt"])
def test_write_read_back_with_ntfscat(tmp_path: Path, scheme: str | None) -> None:
    disk = tmp_path / "windows.raw"
    partition = make_disk(disk, "ntfs", scheme, WINDOWS_TREE)
    volume = VolumeRef(str(disk), "raw", partition)
    assert NtfsOpener().can_open(volume) is None
    with NtfsOpener().open(volume, writable=True) as fs:
        fs.write("/Windows/Panther/unattend.xml", b"<unattend/>")
        fs.mkdir("/Windows/Setup/Scripts", parents=True)
        fs.write("/Windows/Setup/Scripts/SetupComplete.cmd", b"@echo off\r\n")
        assert fs.read("/Users/Public/readme.txt") == b"public\r\n"
    assert ntfs_read(disk, partition, "/Windows/Panther/unattend.xml", tmp_path) == b"<unattend/>"
    script = ntfs_read(disk, partition, "/Windows/Setup/Scripts/SetupComplete.cmd", tmp_path)
    assert script == b"@echo off\r\n"
    assert _fuse_mounts() == []
    assert _helpers() == []


def test_names_match_regardless_of_case(tmp_path: Path) -> None:
    disk = tmp_path / "windows.raw"
    partition = make_disk(disk, "ntfs", "gpt", WINDOWS_TREE)
    with NtfsOpener().open(VolumeRef(str(disk), "raw", partition), writable=True) as fs:
        assert fs.read("/WINDOWS/system32/DRIVERS/ETC/HOSTS") == b"127.0.0.1 localhost\r\n"
        fs.write("/windows/system32/drivers/etc/Hosts", b"10.0.0.1 server\r\n")
        # Replaced, keeping Windows' spelling: no second file differing only in case.
        assert fs.listdir("/Windows/System32/drivers/etc") == ["hosts"]
        fs.write("/windows/panther/Unattend.xml", b"<a/>")
        assert fs.listdir("/WINDOWS/PANTHER") == ["Unattend.xml"]
        assert fs.exists("/windows/PANTHER/UNATTEND.XML")
        fs.remove("/WINDOWS/Panther/unattend.XML")
        assert fs.listdir("/Windows/Panther") == []
    hosts = ntfs_read(disk, partition, "/Windows/System32/drivers/etc/hosts", tmp_path)
    assert hosts == b"10.0.0.1 server\r\n"


def test_reparse_points_stay_inside_the_volume(tmp_path: Path) -> None:
    disk = tmp_path / "windows.raw"
    make_disk(disk, "ntfs", None, {"/etc/passwd": b"the volume's own\n", "/Windows/link": "/etc/passwd",
                                   "/Windows/up": "../../../../etc"})
    with NtfsOpener().open(VolumeRef(str(disk), "raw"), writable=True) as fs:
        assert fs.read("/Windows/link") == b"the volume's own\n"
        assert fs.read("/Windows/up/passwd") == b"the volume's own\n"
        fs.write("/Windows/up/passwd", b"changed inside\n")
        with pytest.raises(ConfinementError):
            fs.read("/../etc/passwd")
    assert Path("/etc/passwd").read_bytes() != b"changed inside\n"
    assert ntfs_read(disk, None, "/etc/passwd", tmp_path) == b"changed inside\n"


def test_read_only_refuses_writes_and_leaves_the_image_as_it_was(tmp_path: Path) -> None:
    disk = tmp_path / "windows.raw"
    partition = make_disk(disk, "ntfs", "mbr", WINDOWS_TREE)
    before = disk.read_bytes()
    with NtfsOpener().open(VolumeRef(str(disk), "raw", partition), writable=False) as fs:
        assert fs.listdir("/") == ["Users", "Windows"]
        with pytest.raises(InvalidInput, match="read-only"):
            fs.write("/Windows/Panther/unattend.xml", b"x")
    assert disk.read_bytes() == before


def test_qcow2_overlay_changes_only_the_clone(tmp_path: Path) -> None:
    master = tmp_path / "master.raw"
    partition = make_disk(master, "ntfs", "gpt", WINDOWS_TREE)
    clone = tmp_path / "clone.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(master), str(clone)],
                   check=True)
    volume = VolumeRef(str(clone), "qcow2", partition)
    fs = open_volume(volume, writable=True)  # chosen among the built-in openers
    assert isinstance(fs, NtfsAccess)
    with fs:
        fs.write("/Windows/Panther/unattend.xml", b"<clone/>")
    flat = tmp_path / "clone.raw"
    subprocess.run(["qemu-img", "convert", "-O", "raw", str(clone), str(flat)], check=True)
    assert ntfs_read(flat, partition, "/Windows/Panther/unattend.xml", tmp_path) == b"<clone/>"
    assert ntfs_read(master, partition, "/Windows/Panther/unattend.xml", tmp_path) is None
    assert _fuse_mounts() == []
    assert _helpers() == []


def test_not_ntfs_is_said_and_left_to_other_openers(tmp_path: Path) -> None:
    disk = tmp_path / "fat.raw"
    make_disk(disk, "fat", None, {"/a.txt": b"a"})
    reason = NtfsOpener().can_open(VolumeRef(str(disk), "raw"))
    assert reason == f"volume '{disk}' holds no NTFS filesystem"
    names = [opener.name for opener in builtin_openers()]
    assert names.index("extfs") < names.index("ntfs") < names.index("fat") < names.index("guestfs")


def test_a_whole_partitioned_disk_names_the_partition_to_give(tmp_path: Path) -> None:
    disk = tmp_path / "windows.raw"
    make_disk(disk, "ntfs", "mbr", WINDOWS_TREE)
    reason = NtfsOpener().can_open(VolumeRef(str(disk), "raw"))
    assert "its partition(s) 1 do" in reason and "--partition 1" in reason
    clone = tmp_path / "clone.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(disk), str(clone)],
                   check=True)
    with pytest.raises(InvalidInput, match="its partition"):
        NtfsOpener().open(VolumeRef(str(clone), "qcow2"), writable=True)
    assert _fuse_mounts() == [] and _helpers() == []
