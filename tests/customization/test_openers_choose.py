"""Choosing an opener for a volume; the loop and libguestfs openers on real images."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from encompass_core import rundir
from encompass_core.customization.access import VolumeRef
from encompass_core.customization.openers import (
    BUILTIN_OPENERS,
    DirTreeOpener,
    ExtFsOpener,
    GuestfsOpener,
    LoopOpener,
    Qcow2Opener,
    builtin_openers,
    open_volume,
)
from encompass_core.customization.openers.dirtree import DirTreeAccess
from encompass_core.customization.openers.extfs import ExtFsAccess
from encompass_core.customization.openers.qcow2 import ExportedExtFsAccess
from encompass_core.errors import NotFound

os.environ["PATH"] += ":/usr/sbin:/sbin"


def run(*command: str | Path) -> str:
    return subprocess.run([str(part) for part in command], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def ext_image(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc" / "hostname").write_bytes(b"master\n")
    (tree / "link").symlink_to("../../../etc")
    (tree / "etc" / "hostlink").symlink_to("hostname")
    image = tmp_path / "master.raw"
    run("mke2fs", "-q", "-F", "-t", "ext4", "-d", tree, image, "16M")
    return image


def test_builtin_openers_are_registered_with_distinct_names_and_priorities() -> None:
    names = [name for name, _, _ in BUILTIN_OPENERS]
    assert len(set(names)) == len(names)
    assert [opener.name for opener in builtin_openers()] == names  # listed in priority order
    priorities = [priority for _, _, priority in BUILTIN_OPENERS]
    assert priorities == sorted(priorities)


def test_each_format_gets_its_opener(tmp_path: Path, ext_image: Path) -> None:
    overlay = tmp_path / "clone.qcow2"
    run("qemu-img", "create", "-q", "-f", "qcow2", "-b", ext_image, "-F", "raw", overlay)
    with open_volume(VolumeRef(str(tmp_path / "tree"), "dir"), writable=True) as fs:
        assert isinstance(fs, DirTreeAccess)
        fs.write("/etc/hostname", b"tree\n")
    with open_volume(VolumeRef(str(ext_image), "raw"), writable=True) as fs:
        assert isinstance(fs, ExtFsAccess)
        fs.write("/link/hostname", b"raw\n")
    with open_volume(VolumeRef(str(overlay), "qcow2"), writable=False) as fs:
        assert isinstance(fs, ExportedExtFsAccess)
        assert fs.read("/etc/hostname") == b"raw\n"
    assert (tmp_path / "tree" / "etc" / "hostname").read_bytes() == b"tree\n"


def test_no_opener_says_why_each_one_cannot(tmp_path: Path) -> None:
    blank = tmp_path / "blank.raw"
    blank.write_bytes(bytes(1024 * 1024))
    openers = [DirTreeOpener(), LoopOpener(allow_loop_mount=False), ExtFsOpener(), Qcow2Opener()]
    with pytest.raises(NotFound) as raised:
        open_volume(VolumeRef(str(blank), "raw"), writable=True, openers=openers)
    message = str(raised.value)
    assert "dirtree: dirtree opens directory trees, not raw images" in message
    assert "loop: loop mounts are not allowed" in message
    assert "extfs: volume '" in message and "holds no ext2/3/4 filesystem" in message
    assert "qcow2-fuse: qcow2-fuse reads qcow2 images, not raw volumes" in message


def test_a_qcow2_without_ext_falls_through_to_the_next_opener(tmp_path: Path) -> None:
    blank = tmp_path / "blank.qcow2"
    run("qemu-img", "create", "-q", "-f", "qcow2", blank, "8M")

    class Fallback:
        name = "fallback"
        opened = False

        def can_open(self, volume: VolumeRef) -> str | None:
            return None

        def open(self, volume: VolumeRef, writable: bool):
            Fallback.opened = True
            return "fallback access"

    volume = VolumeRef(str(blank), "qcow2")
    assert open_volume(volume, False, openers=[Qcow2Opener(), Fallback()]) == "fallback access"
    assert Fallback.opened
    assert not list(rundir.current().glob("qcow2-*"))  # the export tried first left nothing


@pytest.mark.skipif(os.geteuid() != 0, reason="loop mounts need root")
def test_loop_mount_when_allowed(ext_image: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    volume = VolumeRef(str(ext_image), "raw")
    monkeypatch.delenv("ENCOMPASS_ALLOW_LOOP_MOUNT", raising=False)
    assert LoopOpener().can_open(volume) == (
        "loop mounts are not allowed (set ENCOMPASS_ALLOW_LOOP_MOUNT=1 to allow them)"
    )
    monkeypatch.setenv("ENCOMPASS_ALLOW_LOOP_MOUNT", "1")
    opener = LoopOpener()
    assert opener.can_open(volume) is None
    with open_volume(volume, writable=True, openers=[opener]) as fs:
        fs.write("/link/hostname", b"looped\n")  # ../../../etc clamps at the volume's root
        mountpoint = fs.mountpoint
    assert not os.path.exists(mountpoint)
    assert run("debugfs", "-R", "cat /etc/hostname", ext_image) == "looped\n"


@pytest.mark.slow
@pytest.mark.skipif(not shutil.which("guestfish"), reason="libguestfs-tools is not installed")
def test_guestfs_writes_inside_the_guest_filesystem(tmp_path: Path, ext_image: Path) -> None:
    overlay = tmp_path / "clone.qcow2"
    run("qemu-img", "create", "-q", "-f", "qcow2", "-b", ext_image, "-F", "raw", overlay)
    volume = VolumeRef(str(overlay), "qcow2")
    opener = GuestfsOpener(force_tcg=not os.environ.get("ENCOMPASS_TEST_KVM"))
    assert opener.can_open(volume) is None
    with opener.open(volume, writable=True) as fs:
        fs.write("/link/hostname", b"guestfs\n", mode=0o600, uid=10, gid=20)
        assert fs.read("/etc/hostname") == b"guestfs\n"
        assert fs.stat("/link").target == "../../../etc"
        assert fs.stat("/etc/hostname").uid == 10
        fs.write("/etc/hostlink", b"guestfs\n")  # the file behind the link keeps mode and owner
        hostname = fs.stat("/etc/hostname")
        assert (hostname.mode, hostname.uid, hostname.gid) == (0o600, 10, 20)
        assert not fs.exists("/nope")
        with pytest.raises(NotFound):
            fs.read("/nope")
    with ExtFsOpener().open(VolumeRef(str(ext_image), "raw"), writable=False) as master:
        assert master.read("/etc/hostname") == b"master\n"
    flat = tmp_path / "flat.raw"
    run("qemu-img", "convert", "-O", "raw", overlay, flat)
    run("e2fsck", "-fn", flat)
    with ExtFsOpener().open(VolumeRef(str(flat), "raw"), writable=False) as fs:
        assert fs.read("/etc/hostname") == b"guestfs\n"
        assert fs.stat("/etc/hostname").mode == 0o600
