"""A whole disk that PC firmware boots, assembled from partition images without mounting anything.

Layout (MBR, 1 MiB aligned)::

    sector 0         syslinux's mbr.bin (the first 440 bytes) + the partition table
    partition 1      FAT16, bootable: ldlinux.sys/ldlinux.c32 (``syslinux --install``, which
                     works on an image file through mtools), syslinux.cfg, the kernel, the initramfs
    partition 2      the ext4 root filesystem (made by ``mke2fs -d``), copied in keeping its holes

SeaBIOS (or any BIOS) runs the MBR code, which chains to the active partition's boot sector, which
loads syslinux, which reads ``syslinux.cfg`` from the FAT filesystem and boots the kernel on the
serial console. The root is found by its filesystem label, whatever bus the disk sits on.
"""

from __future__ import annotations

import os
from pathlib import Path

from encompass_core.errors import DriverError

from .tools import run_tool

SECTOR = 512
MIB = 1 << 20
#: Where syslinux's MBR boot code comes from (Debian ``syslinux-common``).
MBR_BIN = Path("/usr/lib/syslinux/mbr/mbr.bin")
MBR_CODE_BYTES = 440  # the rest of sector 0 is the disk signature and the partition table
BOOT_PARTITION = 1
ROOT_PARTITION = 2
BOOT_LABEL = "ENCBOOT"
DISK_ID = 0x454E4344  # the MBR's disk signature: "ENCD"

SYSLINUX_CFG = """\
SERIAL 0 115200
DEFAULT linux
PROMPT 0
TIMEOUT 0
LABEL linux
  KERNEL /vmlinuz
  INITRD /initrd.img
  APPEND {cmdline}
"""


def make_boot_partition(image: Path, size_mib: int, kernel: Path, initrd: Path, cmdline: str) -> None:
    """A FAT16 filesystem image holding syslinux, its configuration, the kernel and initramfs."""
    image.unlink(missing_ok=True)
    run_tool(["mkfs.fat", "-F", "16", "-n", BOOT_LABEL, "-C", str(image), str(size_mib * 1024)],
             "mkfs.fat", "dosfstools")
    config = image.with_name("syslinux.cfg")
    config.write_text(SYSLINUX_CFG.format(cmdline=cmdline))
    for source, name in ((kernel, "vmlinuz"), (initrd, "initrd.img"), (config, "syslinux.cfg")):
        run_tool(["mcopy", "-i", str(image), str(source), f"::/{name}"], "mcopy", "mtools")
    config.unlink()
    run_tool(["syslinux", "--install", str(image)], "syslinux", "syslinux")


def assemble_disk(disk: Path, boot_image: Path, root_image: Path) -> None:
    """Write ``disk``: the MBR with syslinux's boot code, ``boot_image`` as partition 1 (active)
    and ``root_image`` as partition 2, each starting on a MiB boundary; holes stay holes."""
    if not MBR_BIN.is_file():
        raise DriverError(f"cannot build the demo master: {MBR_BIN} is missing. "
                          "Install the Debian package 'syslinux-common'")
    boot_start = MIB
    root_start = boot_start + _round_up(boot_image.stat().st_size, MIB)
    total = root_start + _round_up(root_image.stat().st_size, MIB)
    disk.unlink(missing_ok=True)
    with open(disk, "wb") as out:
        out.truncate(total)
    table = (
        "label: dos\n"
        f"label-id: {DISK_ID:#010x}\n"  # fixed, so two builds make the same disk
        f"start={boot_start // SECTOR}, size={(root_start - boot_start) // SECTOR}, type=e, bootable\n"
        f"start={root_start // SECTOR}, size={(total - root_start) // SECTOR}, type=83\n"
    )
    script = disk.with_suffix(".sfdisk")
    script.write_text(table)
    try:
        run_tool(["sh", "-c", 'sfdisk --no-reread --no-tell-kernel -q "$1" < "$2"', "sfdisk",
                  str(disk), str(script)], "sfdisk", "fdisk")
    finally:
        script.unlink()
    with open(disk, "r+b") as out:
        out.write(MBR_BIN.read_bytes()[:MBR_CODE_BYTES])
        _copy_sparse(boot_image, out, boot_start)
        _copy_sparse(root_image, out, root_start)


def _copy_sparse(source: Path, out, offset: int) -> None:
    """Copy ``source`` into ``out`` at ``offset``, skipping blocks of zeros (the disk is sparse)."""
    block = 64 << 10
    zero = bytes(block)
    with open(source, "rb") as src:
        position = offset
        while chunk := src.read(block):
            if chunk != zero[:len(chunk)]:
                out.seek(position)
                out.write(chunk)
            position += len(chunk)
    out.flush()
    os.fsync(out.fileno())


def _round_up(value: int, unit: int) -> int:
    return -(-value // unit) * unit
