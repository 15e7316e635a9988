"""The demo master's root filesystem: a tree written here, made an ext4 image by ``mke2fs -d``.

Its ``/sbin/init`` prints ``encompass-demo: hostname <name>`` on the console, runs the
executable bootscripts of ``/etc/encompass/boot.d`` (where the ``bootscript`` customization
item drops them) and powers the machine off, so a demo run ends by itself.
"""

from __future__ import annotations

import os
from pathlib import Path

from .busybox import NOT_APPLETS
from .tools import run_tool

HOSTNAME = "master"
BOOTSCRIPT_DIR = "/etc/encompass/boot.d"

ROOT_INIT = f"""\
#!/bin/sh
# encompass demo init: say who we are, run rc.local and the bootscripts, power off.
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
[ -c /dev/null ] || mount -t devtmpfs devtmpfs /dev
hostname -F /etc/hostname
echo "encompass-demo: hostname $(cat /etc/hostname)"
[ -x /etc/init.d/rcS ] && /etc/init.d/rcS
if [ -x /etc/rc.local ]; then
  echo "encompass-demo: running /etc/rc.local"
  /etc/rc.local
fi
for script in {BOOTSCRIPT_DIR}/*; do
  [ -f "$script" ] && [ -x "$script" ] || continue
  echo "encompass-demo: bootscript $script"
  "$script"
  echo "encompass-demo: bootscript $script exited $?"
done
echo "encompass-demo: powering off"
sync
mount -o remount,ro /
poweroff -f
"""


def write_root_tree(tree: Path, busybox: Path, applets: list[str], kernel: Path,
                    initrd: Path) -> None:
    """Write the root filesystem's files, with their modes, under ``tree``."""
    for directory, mode in (
        ("", 0o755), ("bin", 0o755), ("sbin", 0o755), ("usr", 0o755), ("usr/bin", 0o755),
        ("usr/sbin", 0o755), ("etc", 0o755), ("etc/init.d", 0o755),
        ("etc/encompass", 0o755), (BOOTSCRIPT_DIR.lstrip("/"), 0o755), ("boot", 0o755),
        ("dev", 0o755), ("proc", 0o555), ("sys", 0o555), ("run", 0o755), ("root", 0o700),
        ("tmp", 0o1777), ("var", 0o755), ("var/tmp", 0o1777), ("mnt", 0o755),
    ):
        path = tree / directory
        path.mkdir(exist_ok=True)
        path.chmod(mode)
    _put(tree / "bin/busybox", busybox.read_bytes(), 0o755)
    _put(tree / "sbin/init", ROOT_INIT.encode(), 0o755)
    _put(tree / "etc/hostname", f"{HOSTNAME}\n".encode(), 0o644)
    _put(tree / "etc/hosts", f"127.0.0.1\tlocalhost\n127.0.1.1\t{HOSTNAME}\n".encode(), 0o644)
    _put(tree / "etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n", 0o644)
    _put(tree / "etc/group", b"root:x:0:\n", 0o644)
    _put(tree / "boot/vmlinuz", kernel.read_bytes(), 0o644)
    _put(tree / "boot/initrd.img", initrd.read_bytes(), 0o644)
    # Links last: busybox lists sbin/init and linuxrc too, and a link must not shadow a file.
    for applet in applets:
        link = tree / applet
        if link.name not in NOT_APPLETS and not link.exists() and not link.is_symlink():
            link.symlink_to(os.path.relpath(tree / "bin/busybox", link.parent))


def make_ext4_image(tree: Path, disk: Path, size_mib: int, label: str) -> None:
    """``mke2fs -d`` a sparse ext4 image of ``tree``; every inode owned by root."""
    run_tool(["mke2fs", "-q", "-F", "-t", "ext4", "-L", label, "-E", "root_owner=0:0",
              "-d", str(tree), str(disk), f"{size_mib}M"], "mke2fs", "e2fsprogs")
    if os.geteuid() != 0:
        # mke2fs -d copies the builder's uid/gid; debugfs rewrites them without mounting.
        commands = []
        for path in sorted(tree.rglob("*")):
            inside = "/" + path.relative_to(tree).as_posix()
            commands += [f'sif "{inside}" uid 0', f'sif "{inside}" gid 0']
        script = disk.with_suffix(".debugfs")
        script.write_text("\n".join(commands) + "\n")
        run_tool(["debugfs", "-w", "-f", str(script), str(disk)], "debugfs", "e2fsprogs")
        script.unlink()


def _put(path: Path, data: bytes, mode: int) -> None:
    path.write_bytes(data)
    path.chmod(mode)
