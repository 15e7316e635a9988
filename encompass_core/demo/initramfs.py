"""The demo master's initramfs: busybox and the virtio modules, in a gzip'ed newc cpio archive.

Its ``/init`` loads the virtio modules the cloud kernel builds as modules, mounts ``root=``
(ext4 on ``/dev/vda``) and ``switch_root``'s into it.
"""

from __future__ import annotations

import gzip
from pathlib import Path

from .busybox import NOT_APPLETS
from .cpio import CpioWriter
from .kmodules import module_bytes, module_load_order, module_name

#: Modules the guest needs to reach its disk; ext4 and the 8250 serial port are built in.
GUEST_MODULES = ("virtio_pci", "virtio_blk")

INITRAMFS_INIT = """\
#!/bin/sh
# encompass demo initramfs: load the disk drivers, mount root=, switch_root into it.
export PATH=/bin:/sbin
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
for module in {modules}; do insmod /lib/modules/$module.ko; done
root=/dev/vda fstype=ext4 mode=rw
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    root=*) root="${{arg#root=}}" ;;
    rootfstype=*) fstype="${{arg#rootfstype=}}" ;;
    ro|rw) mode="$arg" ;;
  esac
done
tries=0
while [ ! -b "$root" ] && [ $tries -lt 100 ]; do usleep 100000; tries=$((tries + 1)); done
if ! mount -t "$fstype" -o "$mode" "$root" /newroot; then
  echo "encompass-demo: cannot mount $root, powering off"
  poweroff -f
fi
mount --move /dev /newroot/dev
umount /proc /sys
exec switch_root /newroot /sbin/init
"""


def build_initramfs(unpacked: Path, release: str, busybox: Path, applets: list[str]) -> bytes:
    """A gzip'ed newc cpio archive: busybox, the guest modules and ``/init``."""
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
    archive.file("init", INITRAMFS_INIT.format(modules=names).encode(), 0o755)
    return gzip.compress(archive.finish(), compresslevel=6, mtime=0)
