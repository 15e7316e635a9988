"""Kernel and initramfs of an image, read out of its first volume for direct kernel boot.

As pygrub does for Xen PV guests, the files are read from the clone itself (so a customized or
updated kernel is the one that boots), read-only, through the core's volume openers, which
confine every path to the volume. The image's software profile names them:
``kernel=/boot/vmlinuz initrd=/boot/initrd.img cmdline="console=ttyS0 root=/dev/vda rw"``, and
``boot_partition=N`` when they live in partition N of a whole disk (the demo master keeps them
in partition 2). An image whose profile names no kernel is booted by the machine's firmware from
its first disk instead.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import attrs

from encompass_core.errors import DriverError, EncompassError
from encompass_core.model import Image


@attrs.frozen
class BootFiles:
    """Where the extracted kernel (and initramfs) are, and the kernel's command line."""

    kernel: Path
    initrd: Path | None
    cmdline: str


def wanted(image: Image) -> dict[str, str] | None:
    """The boot triple the image's software profile asks for, or None (boot from disk)."""
    extra = image.software.extra
    if not extra.get("kernel"):
        return None
    return {"kernel": str(extra["kernel"]), "initrd": str(extra.get("initrd") or ""),
            "cmdline": str(extra.get("cmdline") or ""),
            "partition": str(extra.get("boot_partition") or "")}


def _partition(image: Image, value: str) -> int | None:
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise DriverError(f"image '{image.name}' names boot_partition={value!r}: give a partition "
                          "number from 1 (encompass image show shows the software profile)")
    return int(value)


def extract(image: Image, volume_path: str, volume_format: str, target: Path) -> BootFiles | None:
    """Copy the kernel and initramfs the image names out of its first volume into ``target``.

    Returns None when the image boots from its disk. Raises :class:`DriverError` when the
    volume cannot be opened or a file is missing (naming the image and the path).
    """
    boot = wanted(image)
    if boot is None:
        return None
    partition = _partition(image, boot["partition"])
    from encompass_core.customization.access import VolumeRef
    from encompass_core.customization.openers import open_volume

    target.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path | None] = {"kernel": None, "initrd": None}
    try:
        with contextlib.closing(open_volume(VolumeRef(volume_path, volume_format, partition),
                                            writable=False)) as files:
            for key in ("kernel", "initrd"):
                inside = boot[key]
                if not inside:
                    continue
                if not files.exists(inside):
                    where = volume_path + (f" partition {partition}" if partition else "")
                    raise DriverError(
                        f"image '{image.name}' boots the {key} {inside}, which its first volume "
                        f"({where}) does not hold; fix the software profile "
                        f"({key}=PATH inside the volume) or the volume"
                    )
                paths[key] = _write(target / ("vmlinuz" if key == "kernel" else "initrd.img"),
                                    files.read(inside))
    except DriverError:
        raise
    except EncompassError as exc:
        raise DriverError(f"cannot read the kernel of image '{image.name}' from {volume_path}: "
                          f"{exc}") from exc
    return BootFiles(kernel=paths["kernel"], initrd=paths["initrd"], cmdline=boot["cmdline"])


def _write(path: Path, data: bytes) -> Path:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(data)
    os.chmod(partial, 0o644)
    os.replace(partial, path)
    return path
