"""Disk images: partition tables, ext filesystems through debugfs, qcow2 overlays through FUSE.

Each test builds its own images from a small guest tree (``mke2fs -d``, ``sfdisk``,
``qemu-img``) and checks them as a user would: read back, ``e2fsck -fn``, the master's bytes.
Needed Debian packages: e2fsprogs, fdisk, qemu-utils, qemu-system-common, fuse3.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from encompass_core import rundir
from encompass_core.customization.access import VolumeRef
from encompass_core.customization.openers.extfs import ExtFsOpener
from encompass_core.customization.openers.partitions import find_partition, list_partitions
from encompass_core.customization.openers.qcow2 import Qcow2Opener
from encompass_core.errors import ConfinementError, Conflict, InvalidInput, NotFound

TOOLS = {
    "mke2fs": "e2fsprogs",
    "debugfs": "e2fsprogs",
    "e2fsck": "e2fsprogs",
    "sfdisk": "fdisk",
    "qemu-img": "qemu-utils",
    "qemu-storage-daemon": "qemu-system-common",
    "fusermount3": "fuse3",
}
MIB = 1024 * 1024


@pytest.fixture(scope="module", autouse=True)
def tools() -> None:
    """Fail loudly (never skip) when a tool the tests need is missing."""
    os.environ["PATH"] += ":/usr/sbin:/sbin"
    missing = sorted({package for tool, package in TOOLS.items() if not shutil.which(tool)})
    if missing:
        pytest.fail(f"install the Debian packages {', '.join(missing)} to run these tests")


def run(*command: str | Path) -> str:
    return subprocess.run([str(part) for part in command], check=True, capture_output=True, text=True).stdout


def guest_tree(tmp_path: Path, hostname: bytes = b"master\n") -> Path:
    """A small guest root: /etc/hostname (0640, 0:4), links that try to climb out."""
    root = tmp_path / f"tree-{hostname.strip().decode()}"
    (root / "etc").mkdir(parents=True)
    (root / "home" / "user").mkdir(parents=True)
    (root / "etc" / "hostname").write_bytes(hostname)
    os.chmod(root / "etc" / "hostname", 0o640)
    os.chown(root / "etc" / "hostname", 0, 4)
    os.chown(root / "home" / "user", 1000, 1000)
    (root / "rootlink").symlink_to("/")  # the classic /x -> / trick
    (root / "etc" / "up").symlink_to("../../../../../../etc")  # climbs, clamps at /
    (root / "abs").symlink_to("/etc")  # absolute: the guest's /etc
    (root / "long").symlink_to("/" + "/".join(["etc"] + ["."] * 40))  # a slow symlink
    return root


def make_ext(image: Path, tree: Path, size_mib: int = 16, offset: int = 0) -> None:
    """An ext4 filesystem from ``tree``, filling ``image`` or starting at ``offset``."""
    if offset:
        run("mke2fs", "-q", "-F", "-t", "ext4", "-E", f"offset={offset}", "-d", tree,
            image, f"{size_mib * 1024}k")  # fmt: skip
    else:
        run("mke2fs", "-q", "-F", "-t", "ext4", "-d", tree, image, f"{size_mib}M")


def make_disk(image: Path, label: str) -> None:
    """A 40 MiB disk with two 16 MiB partitions (1 MiB aligned) under an MBR or a GPT."""
    image.write_bytes(b"")
    os.truncate(image, 40 * MIB)
    kind = "83" if label == "dos" else "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
    table = f"label: {label}\n,16M,{kind}\n,16M,{kind}\n"
    subprocess.run(["sfdisk", "-q", str(image)], input=table, text=True, check=True)


def fsck_clean(device: str) -> None:
    done = subprocess.run(["e2fsck", "-fn", device], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def ext_image(tmp_path: Path) -> Path:
    image = tmp_path / "master.raw"
    make_ext(image, guest_tree(tmp_path))
    return image


# ---------------------------------------------------------------- partitions


@pytest.mark.parametrize("label", ["dos", "gpt"])
def test_partitions_are_found_as_sfdisk_wrote_them(tmp_path: Path, label: str) -> None:
    disk = tmp_path / "disk.raw"
    make_disk(disk, label)
    dumped = run("sfdisk", "--json", disk)
    assert [(p.number, p.offset, p.size) for p in list_partitions(str(disk))] == [
        (1, MIB, 16 * MIB),
        (2, 17 * MIB, 16 * MIB),
    ], dumped
    with pytest.raises(NotFound, match="partition 3 does not exist .* partitions 1, 2"):
        find_partition(str(disk), 3)


def test_logical_partitions_are_numbered_from_five(tmp_path: Path) -> None:
    disk = tmp_path / "disk.raw"
    disk.write_bytes(b"")
    os.truncate(disk, 40 * MIB)
    table = "label: dos\n,8M,83\n,,5\n,4M,83\n,4M,83\n"
    subprocess.run(["sfdisk", "-q", str(disk)], input=table, text=True, check=True)
    numbers = {p.number: p.size for p in list_partitions(str(disk))}
    assert numbers == {1: 8 * MIB, 5: 4 * MIB, 6: 4 * MIB}


def test_a_disk_without_table_has_no_partitions(ext_image: Path) -> None:
    assert list_partitions(str(ext_image)) == []
    with pytest.raises(NotFound, match="no MBR or GPT"):
        find_partition(str(ext_image), 1)


# ---------------------------------------------------------------- ext in raw images


def test_write_hostname_into_ext4_raw_cleanly(ext_image: Path) -> None:
    # How fast: benchmarks/customize_bench.py, not a time limit here.
    volume = VolumeRef(str(ext_image), "raw")
    assert ExtFsOpener().can_open(volume) is None
    with ExtFsOpener().open(volume, writable=True) as fs:
        fs.write("/etc/hostname", b"web01\n")
    assert run("debugfs", "-R", "cat /etc/hostname", ext_image) == "web01\n"
    stat = run("debugfs", "-R", "stat /etc/hostname", ext_image)
    assert "Mode:  0640" in stat and "Group:     4" in stat  # kept from the old file
    fsck_clean(str(ext_image))


def test_new_file_mode_owner_and_directories(ext_image: Path) -> None:
    with ExtFsOpener().open(VolumeRef(str(ext_image), "raw"), writable=True) as fs:
        fs.write("/home/user/.profile", b"export A=1\n", mode=0o600, uid=1000, gid=100)
        fs.write("/etc/motd", b"hi\n")  # new: 0644, owner of /etc
        fs.mkdir("/var/lib/app", parents=True)
        fs.write('/var/lib/app/with "quotes" and spaces', b"")
        assert fs.listdir("/var/lib/app") == ['with "quotes" and spaces']
        assert fs.read('/var/lib/app/with "quotes" and spaces') == b""
        fs.remove("/etc/motd")
        assert not fs.exists("/etc/motd")
        profile = fs.stat("/home/user/.profile")
        assert (profile.kind, profile.mode, profile.uid, profile.gid) == ("file", 0o600, 1000, 100)
    stat = run("debugfs", "-R", "stat /home/user/.profile", ext_image)
    assert "Mode:  0600" in stat and "User:  1000" in stat and "Group:   100" in stat
    fsck_clean(str(ext_image))


def test_a_name_like_an_inode_number_never_reaches_that_inode(ext_image: Path) -> None:
    # debugfs reads "<2>" as inode 2 (the root) in sif and cat: writing a file of that name
    # would turn the root directory into a regular file.
    with ExtFsOpener().open(VolumeRef(str(ext_image), "raw"), writable=True) as fs:
        with pytest.raises(InvalidInput, match="cannot be handled by debugfs"):
            fs.write("/etc/<2>", b"x\n")
        with pytest.raises(InvalidInput, match="cannot be handled by debugfs"):
            fs.mkdir("/<11>")
        fs.write("/etc/hostname", b"web01\n")
    assert run("debugfs", "-R", "cat /etc/hostname", ext_image) == "web01\n"
    fsck_clean(str(ext_image))


def test_read_only_and_errors_users_see(ext_image: Path) -> None:
    with ExtFsOpener().open(VolumeRef(str(ext_image), "raw"), writable=False) as fs:
        assert fs.read("/etc/hostname") == b"master\n"
        assert fs.listdir("/") == ["abs", "etc", "home", "long", "lost+found", "rootlink"]
        with pytest.raises(InvalidInput, match="read-only"):
            fs.write("/etc/hostname", b"x")
        with pytest.raises(NotFound, match="/nope does not exist"):
            fs.read("/nope/file")
        with pytest.raises(InvalidInput, match="not a regular file"):
            fs.read("/etc")


def test_symlinks_resolve_inside_the_ext_filesystem(ext_image: Path) -> None:
    with ExtFsOpener().open(VolumeRef(str(ext_image), "raw"), writable=True) as fs:
        assert fs.stat("/abs").target == "/etc"
        assert fs.read("/abs/hostname") == b"master\n"
        assert fs.read("/long/hostname") == b"master\n"  # a target stored in a block
        fs.write("/rootlink/etc/hostname", b"via-root-link\n")
        assert fs.read("/etc/hostname") == b"via-root-link\n"
        fs.write("/etc/up/hostname", b"via-climbing-link\n")  # ../../.. clamps at /
        assert fs.read("/etc/hostname") == b"via-climbing-link\n"
        for path in ("/../etc/hostname", "/etc/../../etc/hostname"):
            with pytest.raises(ConfinementError, match="climbs above the root"):
                fs.write(path, b"x")
    fsck_clean(str(ext_image))


def test_journal_needing_recovery_refuses_writes(ext_image: Path) -> None:
    run("debugfs", "-w", "-R", "feature needs_recovery", ext_image)
    volume = VolumeRef(str(ext_image), "raw")
    with pytest.raises(Conflict, match="journal needs recovery"):
        ExtFsOpener().open(volume, writable=True)
    with ExtFsOpener().open(volume, writable=False) as fs:
        assert fs.read("/etc/hostname") == b"master\n"


@pytest.mark.parametrize("label", ["dos", "gpt"])
def test_write_into_second_partition_leaves_the_first_alone(tmp_path: Path, label: str) -> None:
    disk = tmp_path / "disk.raw"
    make_disk(disk, label)
    make_ext(disk, guest_tree(tmp_path, b"boot\n"), offset=MIB)
    make_ext(disk, guest_tree(tmp_path, b"root\n"), offset=17 * MIB)
    first = disk.read_bytes()[MIB : 17 * MIB]
    volume = VolumeRef(str(disk), "raw", partition=2)
    assert ExtFsOpener().can_open(volume) is None
    with ExtFsOpener().open(volume, writable=True) as fs:
        assert fs.read("/etc/hostname") == b"root\n"
        fs.write("/etc/hostname", b"web01\n")
    assert disk.read_bytes()[MIB : 17 * MIB] == first
    with ExtFsOpener().open(VolumeRef(str(disk), "raw", partition=1), writable=False) as fs:
        assert fs.read("/etc/hostname") == b"boot\n"
    fsck_clean(f"{disk}?offset={17 * MIB}")
    reason = ExtFsOpener().can_open(VolumeRef(str(disk), "raw", partition=3))
    assert reason is not None and "partition 3 does not exist" in reason


# ---------------------------------------------------------------- qcow2 overlays


def make_overlay(tmp_path: Path, master: Path) -> Path:
    overlay = tmp_path / "clone.qcow2"
    run("qemu-img", "create", "-q", "-f", "qcow2", "-b", master, "-F", "raw", overlay)
    return overlay


def test_write_into_qcow2_overlay_leaves_master_untouched(tmp_path: Path, ext_image: Path) -> None:
    master_digest = digest(ext_image)
    overlay = make_overlay(tmp_path, ext_image)
    volume = VolumeRef(str(overlay), "qcow2")
    assert Qcow2Opener().can_open(volume) is None
    with Qcow2Opener().open(volume, writable=True) as fs:
        fs.write("/etc/hostname", b"clone01\n", mode=0o644)
    assert digest(ext_image) == master_digest
    run("qemu-img", "check", overlay)
    assert not list(rundir.current().glob("qcow2-*"))  # the export's mount point and work files
    with Qcow2Opener().open(volume, writable=False) as fs:
        assert fs.read("/etc/hostname") == b"clone01\n"
        assert fs.stat("/etc/hostname").mode == 0o644
    flat = tmp_path / "flat.raw"
    run("qemu-img", "convert", "-O", "raw", overlay, flat)
    fsck_clean(str(flat))


def test_qcow2_overlay_of_a_partitioned_master(tmp_path: Path) -> None:
    disk = tmp_path / "disk.raw"
    make_disk(disk, "gpt")
    make_ext(disk, guest_tree(tmp_path, b"root\n"), offset=17 * MIB)
    master_digest = digest(disk)
    volume = VolumeRef(str(make_overlay(tmp_path, disk)), "qcow2", partition=2)
    with Qcow2Opener().open(volume, writable=True) as fs:
        fs.write("/etc/hostname", b"web02\n")
    with Qcow2Opener().open(volume, writable=False) as fs:
        assert fs.read("/etc/hostname") == b"web02\n"
    assert digest(disk) == master_digest
    with pytest.raises(NotFound, match="partition 4 does not exist"):
        Qcow2Opener().open(VolumeRef(volume.path, "qcow2", partition=4), writable=False)
