"""FAT volumes through mtools: whole images and MBR/GPT partitions, raw and qcow2, names looked up
regardless of case, names Windows refuses, confinement.

Each test builds its disk (``sfdisk``, ``mkfs.vfat``) and reads back with ``mcopy``. Needs the
Debian packages mtools, dosfstools, fdisk, qemu-utils, qemu-system-common, fuse3.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from encompass_core.customization.access import VolumeRef
from encompass_core.customization.openers import open_volume
from encompass_core.customization.openers.fat import FatAccess, FatOpener, parse_mdir
from encompass_core.errors import ConfinementError, InvalidInput, NotFound
from encompass_core.testing.windisks import fat_read, make_disk

TREE = {"/sysprep/i386": None, "/EFI/BOOT/bootx64.efi": b"MZ", "/AUTOEXEC.BAT": b"@echo off\r\n"}


@pytest.mark.parametrize("scheme", [None, "mbr", "gpt"])
def test_write_read_back_with_mcopy(tmp_path: Path, scheme: str | None) -> None:
    disk = tmp_path / "xp.raw"
    partition = make_disk(disk, "fat", scheme, TREE)
    volume = VolumeRef(str(disk), "raw", partition)
    assert FatOpener().can_open(volume) is None
    with FatOpener().open(volume, writable=True) as fs:
        fs.write("/sysprep/sysprep.inf", b"[UserData]\r\nComputerName=XP01\r\n")
        fs.mkdir("/Windows/Setup/Scripts", parents=True)
        fs.write("/Windows/Setup/Scripts/a long name.cmd", b"echo\r\n")
        assert fs.read("/AUTOEXEC.BAT") == b"@echo off\r\n"
        assert fs.stat("/AUTOEXEC.BAT").size == len(b"@echo off\r\n")
        assert fs.stat("/EFI").kind == "dir"
    assert fat_read(disk, partition, "/sysprep/sysprep.inf") == b"[UserData]\r\nComputerName=XP01\r\n"
    assert fat_read(disk, partition, "/Windows/Setup/Scripts/a long name.cmd") == b"echo\r\n"
    if partition is None:  # fsck.vfat takes no offset
        check = subprocess.run(["fsck.vfat", "-n", str(disk)], capture_output=True)
        assert check.returncode == 0, check.stdout


def test_names_match_regardless_of_case_and_removal(tmp_path: Path) -> None:
    disk = tmp_path / "esp.raw"
    partition = make_disk(disk, "fat", "gpt", TREE)
    with FatOpener().open(VolumeRef(str(disk), "raw", partition), writable=True) as fs:
        assert fs.read("/efi/boot/BOOTX64.EFI") == b"MZ"
        fs.write("/efi/Boot/BootX64.efi", b"MZ2")
        assert fs.listdir("/EFI/BOOT") == ["bootx64.efi"]
        fs.remove("/Autoexec.bat")
        assert not fs.exists("/AUTOEXEC.BAT")
        with pytest.raises(NotFound):
            fs.read("/AUTOEXEC.BAT")
    assert fat_read(disk, partition, "/EFI/BOOT/bootx64.efi") == b"MZ2"
    assert fat_read(disk, partition, "/AUTOEXEC.BAT") is None


def test_bad_names_and_climbing_are_refused(tmp_path: Path) -> None:
    disk = tmp_path / "fat.raw"
    make_disk(disk, "fat", None, TREE)
    with FatOpener().open(VolumeRef(str(disk), "raw"), writable=True) as fs:
        with pytest.raises(InvalidInput, match="not a name Windows can use"):
            fs.write("/sysprep/a*b.inf", b"x")
        with pytest.raises(ConfinementError):
            fs.write("/sysprep/../../x", b"x")
        # '..' inside the volume is resolved by us, never handed to mtools.
        fs.write("/sysprep/i386/../sysprep.inf", b"ok")
    assert fat_read(disk, None, "/sysprep/sysprep.inf") == b"ok"


def test_read_only_refuses_writes(tmp_path: Path) -> None:
    disk = tmp_path / "fat.raw"
    make_disk(disk, "fat", "mbr", TREE)
    with FatOpener().open(VolumeRef(str(disk), "raw", 1), writable=False) as fs:
        assert fs.listdir("/") == ["AUTOEXEC.BAT", "EFI", "sysprep"]
        with pytest.raises(InvalidInput, match="read-only"):
            fs.write("/x.txt", b"x")


def test_qcow2_overlay_is_chosen_and_changes_only_the_clone(tmp_path: Path) -> None:
    master = tmp_path / "master.raw"
    partition = make_disk(master, "fat", "mbr", TREE)
    clone = tmp_path / "clone.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(master), str(clone)],
                   check=True)
    fs = open_volume(VolumeRef(str(clone), "qcow2", partition), writable=True)
    assert isinstance(fs, FatAccess)
    with fs:
        fs.write("/sysprep/sysprep.inf", b"clone")
    flat = tmp_path / "clone.raw"
    subprocess.run(["qemu-img", "convert", "-O", "raw", str(clone), str(flat)], check=True)
    assert fat_read(flat, partition, "/sysprep/sysprep.inf") == b"clone"
    assert fat_read(master, partition, "/sysprep/sysprep.inf") is None


def test_mdir_listing_is_parsed() -> None:
    listing = (
        " Volume in drive : is WIN\nDirectory for ::/Windows\n\n"
        ".            <DIR>     2026-12-01  16:36 \n"
        "PANTHER      <DIR>     2026-12-01  16:36  Panther\n"
        "HELLO    TXT         4 2026-12-01  16:37  Hello.txt\n"
        "CONFIG   SYS        12 2026-12-01  16:37 \n"
        "ALONGN~1 TXT         3 2026-12-01  16:36  a long name with spaces.txt\n"
        "        5 files                   7 bytes\n"
    )
    entries = parse_mdir(listing)
    assert {name: (e.kind, e.size) for name, e in entries.items()} == {
        "Panther": ("dir", 0), "Hello.txt": ("file", 4), "CONFIG.SYS": ("file", 12),
        "a long name with spaces.txt": ("file", 3)}
