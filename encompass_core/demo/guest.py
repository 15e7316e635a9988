"""A tiny bootable Linux master for ``encompass demo`` and the hypervisor tests.

The master is built from two Debian packages, without root and without mounting anything:

- ``apt-get download`` fetches the Debian cloud kernel and ``busybox-static`` into a cache
  directory (reused on the next run); ``dpkg-deb -x`` unpacks them into a temporary tree
  (:mod:`.packages`).
- A gzip'ed newc initramfs, written here in Python, loads the disk drivers the cloud kernel
  builds as modules, finds the root filesystem by its label (``root=LABEL=encompass-root``, so a
  virtio disk and an iSCSI LUN on a SCSI bus boot alike) and ``switch_root``'s into it
  (:mod:`.initramfs`, with :mod:`.kmodules` and :mod:`.cpio`).
- The root filesystem is an ext4 image made by ``mke2fs -d`` from a tree written here.
  Its ``/sbin/init`` prints ``encompass-demo: hostname <name>`` on the console, runs the
  executable bootscripts of ``/etc/encompass/boot.d`` (where the ``bootscript`` customization
  item drops them) and powers the machine off, so a demo run ends by itself (:mod:`.rootfs`).
- The master is a whole disk that firmware boots (:mod:`.bootdisk`): an MBR with syslinux's boot
  code, partition 1 FAT16 with syslinux, the kernel and the initramfs, partition 2 the ext4 root
  (:data:`ROOT_PARTITION`: customization items of the demo name it).

The kernel and the initramfs are also kept inside the root filesystem as ``/boot/vmlinuz`` and
``/boot/initrd.img``: a platform driver may extract them from a clone's partition 2 for direct
kernel boot (software profile ``kernel``, ``initrd``, ``cmdline``, ``boot_partition=2``), as pygrub
does for Xen PV guests.

This module builds the master from those pieces, once: a stamp file marks a finished build.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
from pathlib import Path

import attrs

from .bootdisk import ROOT_PARTITION, assemble_disk, make_boot_partition
from .busybox import busybox_applets
from .initramfs import build_initramfs
from .packages import fetch_packages, kernel_release, unpack
from .rootfs import make_ext4_image, write_root_tree
from .tools import Progress, say

#: Bump when the layout of the master changes, so cached masters are rebuilt.
BUILD_VERSION = 4
ROOT_SIZE_MIB = 64
BOOT_SIZE_MIB = 32
ROOT_LABEL = "encompass-root"
CMDLINE = f"console=ttyS0 root=LABEL={ROOT_LABEL} rw quiet"


@attrs.frozen
class DemoMaster:
    """A built demo master: its raw disk (firmware boots it) and the kernel boot triple it
    carries, for direct kernel boot; the root filesystem is partition :attr:`root_partition`."""

    disk: Path
    kernel: Path
    initrd: Path
    cmdline: str
    kernel_release: str
    root_partition: int = ROOT_PARTITION


def build_demo_master(workdir: Path, cache: Path, progress: Progress = None) -> DemoMaster:
    """Build the demo master in ``workdir`` (``master.raw``, ``vmlinuz``, ``initrd.img``).

    ``master.raw`` is a whole disk that firmware boots: MBR, syslinux on FAT16 partition 1, the
    ext4 root on partition 2 (labelled :data:`ROOT_LABEL`).

    Idempotent: when ``workdir`` already holds a master of this :data:`BUILD_VERSION` it is
    returned at once. Downloaded packages are kept in ``cache`` and reused. Raises
    :class:`DriverError` when a tool (apt-get, dpkg-deb, mke2fs, debugfs,
    mkfs.fat, mcopy, syslinux, sfdisk) is missing or fails.
    """
    workdir = Path(workdir)
    stamp = workdir / "demo-master.json"
    built = _read_stamp(stamp, workdir)
    if built is not None:
        return built
    workdir.mkdir(parents=True, exist_ok=True)
    # Several processes (test sessions side by side) may ask at once: one builds, the others
    # wait for it and find its master.
    with open(workdir / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        built = _read_stamp(stamp, workdir)
        if built is not None:
            return built
        return _build(workdir, stamp, Path(cache), progress)


def _build(workdir: Path, stamp: Path, cache: Path, progress: Progress) -> DemoMaster:
    kernel_deb, busybox_deb = fetch_packages(cache, progress)
    with tempfile.TemporaryDirectory(prefix="demo-build-", dir=workdir) as tmp:
        tmpdir = Path(tmp)
        unpacked = tmpdir / "unpacked"
        for deb in (kernel_deb, busybox_deb):
            unpack(deb, unpacked, progress)
        release = kernel_release(kernel_deb)
        busybox = unpacked / "bin" / "busybox"
        applets = busybox_applets(busybox)
        say(progress, "writing the initramfs")
        initrd = tmpdir / "initrd.img"
        initrd.write_bytes(build_initramfs(unpacked, release, busybox, applets, ROOT_LABEL))
        kernel = tmpdir / "vmlinuz"
        shutil.copyfile(unpacked / "boot" / f"vmlinuz-{release}", kernel)
        say(progress, "writing the root filesystem")
        tree = tmpdir / "root"
        write_root_tree(tree, busybox, applets, kernel, initrd)
        root = tmpdir / "root.ext4"
        make_ext4_image(tree, root, ROOT_SIZE_MIB, ROOT_LABEL)
        say(progress, "writing the boot partition (syslinux) and the disk")
        boot = tmpdir / "boot.fat"
        make_boot_partition(boot, BOOT_SIZE_MIB, kernel, initrd, CMDLINE)
        disk = tmpdir / "master.raw"
        assemble_disk(disk, boot, root)
        for path in (disk, kernel, initrd):
            os.replace(path, workdir / path.name)
    master = DemoMaster(
        disk=workdir / "master.raw",
        kernel=workdir / "vmlinuz",
        initrd=workdir / "initrd.img",
        cmdline=CMDLINE,
        kernel_release=release,
    )
    _write_stamp(stamp, master)
    say(progress, f"demo master ready: {master.disk}")
    return master


def _read_stamp(stamp: Path, workdir: Path) -> DemoMaster | None:
    try:
        document = json.loads(stamp.read_text())
    except (OSError, ValueError):
        return None
    if document.get("build_version") != BUILD_VERSION:
        return None
    master = DemoMaster(
        disk=workdir / document["disk"], kernel=workdir / document["kernel"],
        initrd=workdir / document["initrd"], cmdline=document["cmdline"],
        kernel_release=document["kernel_release"],
        root_partition=int(document.get("root_partition", ROOT_PARTITION)),
    )
    if all(p.is_file() for p in (master.disk, master.kernel, master.initrd)):
        return master
    return None


def _write_stamp(stamp: Path, master: DemoMaster) -> None:
    # Names relative to the work directory, so a moved work directory stays valid.
    document = {
        "build_version": BUILD_VERSION,
        **{key: value if isinstance(value, int) else str(value)
           for key, value in attrs.asdict(master).items()},
        **{key: getattr(master, key).name for key in ("disk", "kernel", "initrd")},
    }
    temporary = stamp.with_suffix(".tmp")
    temporary.write_text(json.dumps(document, indent=2) + "\n")
    os.replace(temporary, stamp)
