"""One debugfs process per opened ext volume: cheap customizations, checked in the image.

Each test builds a small ext4 image (``mke2fs -d``), customizes it as the item types do, and
checks the result from outside (``debugfs -R``, ``e2fsck -fn``). A ``debugfs`` placed first on
PATH counts the processes started. Needed Debian package: e2fsprogs.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from encompass_core.customization.access import VolumeRef
from encompass_core.customization.openers.extfs import ExtFsOpener
from encompass_core.errors import DriverError

REAL_DEBUGFS = shutil.which("debugfs", path=os.environ["PATH"] + ":/usr/sbin:/sbin")


def run(*command: str | Path) -> str:
    return subprocess.run([str(part) for part in command], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def image(tmp_path: Path) -> Path:
    """A guest tree whose names look like what debugfs prints between requests."""
    if REAL_DEBUGFS is None:
        pytest.fail("install the Debian package e2fsprogs to run these tests")
    root = tmp_path / "tree"
    for sub in ("etc/systemd/system", "lib/systemd", "usr/local/sbin"):
        (root / sub).mkdir(parents=True)
    (root / "etc" / "hostname").write_bytes(b"master\n")
    (root / "etc" / "hosts").write_bytes(b"127.0.0.1\tlocalhost\n127.0.1.1\tmaster\n")
    (root / "etc" / "debugfs: ls -p <2>").write_bytes(b"looks like a request echo\n")
    (root / "etc" / "# encompass 0").write_bytes(b"# encompass 0\ndebugfs: cd <2>\n")
    (root / "lib" / "systemd" / "systemd").write_bytes(b"")
    image = tmp_path / "disk.raw"
    run("mke2fs", "-q", "-F", "-t", "ext4", "-d", root, image, "32M")
    return image


@pytest.fixture
def debugfs_starts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A file that gets one line each time a debugfs process starts."""
    counter = tmp_path / "debugfs-starts"
    shim = tmp_path / "bin" / "debugfs"
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\necho "$*" >> {counter}\nexec {REAL_DEBUGFS} "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{shim.parent}:{os.environ['PATH']}")
    counter.touch()
    return counter


def test_a_whole_customization_starts_debugfs_three_times(image: Path, debugfs_starts: Path) -> None:
    with ExtFsOpener().open(VolumeRef(str(image), "raw"), writable=True) as fs:
        fs.write("/etc/hostname", b"web01\n")
        hosts = fs.read("/etc/hosts").replace(b"master", b"web01")
        fs.write("/etc/hosts", hosts)
        assert fs.read("/etc/hosts") == hosts
        fs.write("/usr/local/sbin/firstboot", b"#!/bin/sh\n", mode=0o755, uid=0, gid=0)
        assert fs.exists("/lib/systemd/systemd")
        fs.mkdir("/etc/systemd/system/multi-user.target.d")
        fs.write("/etc/systemd/system/multi-user.target.d/firstboot.conf", b"[Unit]\n")
        fs.remove("/etc/hostname")
        fs.write("/etc/hostname", b"web01\n")
    # The filesystem is marked "not clean" on disk; one session does the work (and marks it
    # clean again last); a read-only one checks the work in the image.
    starts = [" ".join(line.split()[:3]) for line in debugfs_starts.read_text().splitlines()]
    assert starts == ["-w -R ssv", "-w -f -", "-c -f -"]
    assert "Filesystem state:         clean" in run("dumpe2fs", "-h", image)
    assert run(REAL_DEBUGFS, "-R", "cat /etc/hosts", image) == "127.0.0.1\tlocalhost\n127.0.1.1\tweb01\n"
    assert run(REAL_DEBUGFS, "-R", "cat /etc/hostname", image) == "web01\n"
    assert "Mode:  0755" in run(REAL_DEBUGFS, "-R", "stat /usr/local/sbin/firstboot", image)
    done = subprocess.run(["e2fsck", "-fn", str(image)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


def test_names_that_look_like_debugfs_output_are_plain_names(image: Path) -> None:
    with ExtFsOpener().open(VolumeRef(str(image), "raw"), writable=True) as fs:
        assert fs.listdir("/etc") == ["# encompass 0", "debugfs: ls -p <2>", "hostname", "hosts", "systemd"]
        assert fs.read("/etc/# encompass 0") == b"# encompass 0\ndebugfs: cd <2>\n"
        fs.write("/etc/debugfs: ls -p <2>", b"still a file\n")
        assert fs.read("/etc/debugfs: ls -p <2>") == b"still a file\n"
    assert run(REAL_DEBUGFS, "-R", "cat /etc/hostname", image) == "master\n"


def test_a_read_only_volume_is_read_by_one_process(image: Path, debugfs_starts: Path) -> None:
    with ExtFsOpener().open(VolumeRef(str(image), "raw"), writable=False) as fs:
        assert fs.read("/etc/hostname") == b"master\n"
        assert fs.stat("/etc/hosts").size == len(b"127.0.0.1\tlocalhost\n127.0.1.1\tmaster\n")
        assert fs.listdir("/usr/local/sbin") == []
    assert [line.split()[0] for line in debugfs_starts.read_text().splitlines()] == ["-c"]


def test_a_full_filesystem_fails_the_write_and_closing_does_not_hide_it(tmp_path: Path) -> None:
    root = tmp_path / "small"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "hostname").write_bytes(b"master\n")
    image = tmp_path / "small.raw"
    run("mke2fs", "-q", "-F", "-t", "ext4", "-d", root, image, "2M")
    fs = ExtFsOpener().open(VolumeRef(str(image), "raw"), writable=True)
    with pytest.raises(DriverError, match="could not write /etc/big .* Could not allocate block"):
        fs.write("/etc/big", os.urandom(4 * 1024 * 1024))
    fs.close()  # the write's error was the one to see
    assert run(REAL_DEBUGFS, "-R", "cat /etc/hostname", image) == "master\n"
    done = subprocess.run(["e2fsck", "-fn", str(image)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


def superblock_state(image: Path) -> str:
    return next(line.split(":", 1)[1].strip() for line in run("dumpe2fs", "-h", image).splitlines()
                if line.startswith("Filesystem state:"))


def test_a_writer_killed_mid_way_leaves_the_filesystem_marked_and_the_next_one_repairs_it(
    image: Path,
) -> None:
    fs = ExtFsOpener().open(VolumeRef(str(image), "raw"), writable=True)
    fs.write("/etc/hostname", b"web01\n")
    fs._session._process.kill()  # what SIGKILL of the customizing process does to its debugfs
    fs._session._process.wait()
    with pytest.raises(DriverError):
        fs.close()
    assert superblock_state(image) == "not clean"

    with ExtFsOpener().open(VolumeRef(str(image), "raw"), writable=True) as again:
        again.write("/etc/hostname", b"web02\n")
        assert again._session.repaired
    assert superblock_state(image) == "clean"
    assert run(REAL_DEBUGFS, "-R", "cat /etc/hostname", image) == "web02\n"
    done = subprocess.run(["e2fsck", "-fn", str(image)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


def test_a_superblock_half_written_by_a_killed_writer_is_repaired_before_writing(image: Path) -> None:
    # A writer killed while libext2fs wrote the superblock: new fields, the old checksum.
    with open(image, "r+b") as disk:
        disk.seek(1024 + 0x0C)  # s_free_blocks_count_lo
        count = int.from_bytes(disk.read(4), "little")
        disk.seek(1024 + 0x0C)
        disk.write((count - 7).to_bytes(4, "little"))
    assert subprocess.run(["e2fsck", "-fn", str(image)], capture_output=True).returncode != 0

    with ExtFsOpener().open(VolumeRef(str(image), "raw"), writable=True) as fs:
        fs.write("/etc/hostname", b"web01\n")
        assert fs._session.repaired
    done = subprocess.run(["e2fsck", "-fn", str(image)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout
    assert run(REAL_DEBUGFS, "-R", "cat /etc/hostname", image) == "web01\n"


def test_a_filesystem_e2fsck_cannot_repair_is_not_written(
    image: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open(image, "r+b") as disk:  # the state says "errors detected"
        disk.seek(1024 + 58)
        disk.write((0x2).to_bytes(2, "little"))
    failing = tmp_path / "bin" / "e2fsck"  # an e2fsck that gives up, as on a wrecked filesystem
    failing.parent.mkdir()
    failing.write_text("#!/bin/sh\necho 'e2fsck: cannot continue, aborting.'\nexit 8\n")
    failing.chmod(0o755)
    monkeypatch.setenv("PATH", f"{failing.parent}:{os.environ['PATH']}")
    with pytest.raises(DriverError, match=r"e2fsck could not repair it \(exit status 8: "
                       r"e2fsck: cannot continue, aborting.\); un-customize"):
        with ExtFsOpener().open(VolumeRef(str(image), "raw"), writable=True) as fs:
            fs.write("/etc/hostname", b"web01\n")
    assert run(REAL_DEBUGFS, "-R", "cat /etc/hostname", image).endswith("\nmaster\n")
