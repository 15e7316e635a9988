"""Symlinks and empty directories made and removed through every built-in opener.

Service links (systemd ``*.wants/``, SysV ``/etc/rcN.d``) are symlinks: each opener makes them
as the guest would see them, owned like a new file, and removes directories it made. Checked
from outside with the tools that read the filesystem (``readlink`` on a tree, ``debugfs`` and
``e2fsck -fn`` on images, ``qemu-img`` for the overlay's backing master).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from encompass_core.customization.access import VolumeRef
from encompass_core.customization.openers import DirTreeOpener, ExtFsOpener, GuestfsOpener, Qcow2Opener
from encompass_core.errors import Conflict, InvalidInput, NotFound

LONG_TARGET = "/lib/systemd/system/" + "a-rather-long-unit-name-" * 3 + ".service"  # a slow link


def guest(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    (root / "etc" / "systemd" / "system").mkdir(parents=True)
    (root / "etc" / "rc2.d").mkdir(parents=True)
    os.chown(root / "etc" / "rc2.d", 7, 8)
    (root / "etc" / "hostname").write_text("master\n")
    return root


def ext_image(tmp_path: Path) -> Path:
    image = tmp_path / "master.raw"
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-d", str(guest(tmp_path)), str(image), "16M"],
                   check=True)
    return image


def debugfs(image: Path, command: str) -> str:
    return subprocess.run(["debugfs", "-R", command, str(image)], capture_output=True, text=True,
                          check=True).stdout


def exercise(fs) -> None:
    """What the service item does: links in new and existing directories, then undo it."""
    fs.mkdir("/etc/systemd/system/multi-user.target.wants")
    fs.symlink("/etc/systemd/system/multi-user.target.wants/cron.service", "/lib/systemd/system/cron.service")
    fs.symlink("/etc/systemd/system/long.service", LONG_TARGET)
    fs.symlink("/etc/rc2.d/S01cron", "../init.d/cron")
    fs.symlink("/etc/systemd/system/masked.service", "/dev/null")
    info = fs.stat("/etc/rc2.d/S01cron")
    assert (info.kind, info.target, info.uid, info.gid) == ("symlink", "../init.d/cron", 7, 8)
    assert fs.stat("/etc/systemd/system/long.service").target == LONG_TARGET
    assert fs.listdir("/etc/systemd/system/multi-user.target.wants") == ["cron.service"]
    with pytest.raises(Conflict, match="exists"):
        fs.symlink("/etc/rc2.d/S01cron", "../init.d/other")
    with pytest.raises(NotFound):
        fs.symlink("/etc/rc9.d/S01cron", "../init.d/cron")
    with pytest.raises(InvalidInput, match="line break"):
        fs.symlink("/etc/rc2.d/S02bad", "a\nb")
    with pytest.raises(Conflict, match="not empty"):
        fs.rmdir("/etc/systemd/system/multi-user.target.wants")
    with pytest.raises(InvalidInput, match="not a directory"):
        fs.rmdir("/etc/hostname")
    fs.remove("/etc/systemd/system/multi-user.target.wants/cron.service")
    fs.rmdir("/etc/systemd/system/multi-user.target.wants")
    assert not fs.exists("/etc/systemd/system/multi-user.target.wants")
    fs.remove("/etc/systemd/system/long.service")


def check_image(image: Path) -> None:
    assert "S01cron" in debugfs(image, "ls -l /etc/rc2.d")
    assert 'Fast link dest: "../init.d/cron"' in debugfs(image, "stat /etc/rc2.d/S01cron")
    assert 'Fast link dest: "/dev/null"' in debugfs(image, "stat /etc/systemd/system/masked.service")
    listing = debugfs(image, "ls /etc/systemd/system")
    assert "multi-user.target.wants" not in listing and "long.service" not in listing
    done = subprocess.run(["e2fsck", "-fn", str(image)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


def test_links_in_a_directory_tree(tmp_path: Path) -> None:
    root = guest(tmp_path)
    with DirTreeOpener().open(VolumeRef(str(root), "dir"), True) as fs:
        exercise(fs)
    assert os.readlink(root / "etc/rc2.d/S01cron") == "../init.d/cron"
    assert os.lstat(root / "etc/rc2.d/S01cron").st_uid == 7
    assert os.readlink(root / "etc/systemd/system/masked.service") == "/dev/null"
    assert sorted(os.listdir(root / "etc/systemd/system")) == ["masked.service"]


def test_links_in_a_raw_ext4_image(tmp_path: Path) -> None:
    image = ext_image(tmp_path)
    with ExtFsOpener().open(VolumeRef(str(image), "raw"), True) as fs:
        exercise(fs)
    check_image(image)


def test_links_in_a_qcow2_overlay(tmp_path: Path) -> None:
    master = ext_image(tmp_path)
    overlay = tmp_path / "clone.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(master), str(overlay)],
                   check=True)
    before = master.read_bytes()
    with Qcow2Opener().open(VolumeRef(str(overlay), "qcow2"), True) as fs:
        exercise(fs)
    assert master.read_bytes() == before
    flat = tmp_path / "flat.raw"
    subprocess.run(["qemu-img", "convert", "-O", "raw", str(overlay), str(flat)], check=True)
    check_image(flat)


@pytest.mark.slow
@pytest.mark.skipif(not shutil.which("guestfish"), reason="libguestfs-tools is not installed")
def test_links_through_libguestfs(tmp_path: Path) -> None:
    image = ext_image(tmp_path)
    opener = GuestfsOpener(force_tcg=not os.environ.get("ENCOMPASS_TEST_KVM"))
    with opener.open(VolumeRef(str(image), "raw"), True) as fs:
        exercise(fs)
    check_image(image)
