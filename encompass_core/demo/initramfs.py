"""The demo master's initramfs: busybox and the virtio modules, in a gzip'ed newc cpio archive.

Its ``/init`` loads the disk drivers the cloud kernel builds as modules (virtio block, virtio SCSI,
SCSI disks: a boot disk may be a virtio disk or an iSCSI LUN on a SCSI bus), finds ``root=``
(a device path, or ``LABEL=``/``UUID=`` found by busybox ``findfs`` whatever the disk's name),
mounts it and ``switch_root``'s into it.
"""

from __future__ import annotations

import gzip
from pathlib import Path

from .busybox import NOT_APPLETS
from .cpio import CpioWriter
from .kmodules import module_bytes, module_load_order, module_name

#: Modules the guest needs to reach its disk; ext4 and the 8250 serial port are built in.
GUEST_MODULES = ("virtio_pci", "virtio_blk", "virtio_scsi", "sd_mod")

INITRAMFS_INIT = """\
#!/bin/sh
# encompass demo initramfs: load the disk drivers, mount root=, switch_root into it.
export PATH=/bin:/sbin
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
for module in {modules}; do insmod /lib/modules/$module.ko; done
root=LABEL={root_label} fstype=ext4 mode=rw
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    root=*) root="${{arg#root=}}" ;;
    rootfstype=*) fstype="${{arg#rootfstype=}}" ;;
    ro|rw) mode="$arg" ;;
  esac
done
find_root() {{
  case "$root" in
    LABEL=*|UUID=*) findfs "$root" 2>/dev/null ;;
    *) [ -b "$root" ] && echo "$root" ;;
  esac
}}
tries=0
device=$(find_root)
while [ -z "$device" ] && [ $tries -lt 150 ]; do
  usleep 100000; tries=$((tries + 1)); device=$(find_root)
done
if [ -z "$device" ] || ! mount -t "$fstype" -o "$mode" "$device" /newroot; then
  echo "encompass-demo: cannot mount root=$root, powering off"
  poweroff -f
fi
mount --move /dev /newroot/dev
umount /proc /sys
exec switch_root /newroot /sbin/init
"""


def build_initramfs(unpacked: Path, release: str, busybox: Path, applets: list[str],
                    root_label: str) -> bytes:
    """A gzip'ed newc cpio archive: busybox, the guest modules and ``/init``, which mounts the
    filesystem labelled ``root_label`` when the command line names no ``root=``."""
    modules = module_load_order(unpacked / "lib" / "modules" / release, GUEST_MODULES)
    archive = CpioWriter()
    for directory in ("bin", "sbin", "dev", "proc", "sys", "newroot", "lib", "lib/modules"):
        archive.directory(directory)
    # The kernel opens /dev/console before /init runs, before devtmpfs is mounted.
    archive.char_device("dev/console", 0o600, 5, 1)
    archive.file("bin/busybox", busybox.read_bytes(), 0o755)
    for name in sorted({Path(applet).name for applet in applets} - NOT_APPLETS):
        archive.symlink(f"bin/{name}", "busybox")
    for ko in modules:
        archive.file(f"lib/modules/{module_name(ko.name)}.ko", module_bytes(ko), 0o644)
    names = " ".join(module_name(ko.name) for ko in modules)
    archive.file("init", INITRAMFS_INIT.format(modules=names, root_label=root_label).encode(), 0o755)
    return gzip.compress(archive.finish(), compresslevel=6, mtime=0)
