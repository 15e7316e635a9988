"""Kernel modules of an unpacked Debian kernel: which ``.ko`` files to load, in which order."""

from __future__ import annotations

import lzma
import struct
from collections.abc import Iterable
from pathlib import Path

from encompass_core.errors import DriverError


def module_load_order(modules_dir: Path, wanted: Iterable[str]) -> list[Path]:
    """The ``.ko`` files to load, dependencies first, skipping modules built into the kernel.

    Debian ships no ``modules.dep`` (depmod writes it on install), so dependencies are read
    from each module's ``.modinfo`` ELF section.
    """
    builtin = {
        module_name(line) for line in (modules_dir / "modules.builtin").read_text().split()
    }
    index = {
        module_name(p.name): p
        for pattern in ("*.ko", "*.ko.xz") for p in (modules_dir / "kernel").rglob(pattern)
    }
    order: list[Path] = []

    def visit(name: str) -> None:
        name = module_name(name)
        if name in builtin or index.get(name) in order:
            return
        if name not in index:
            raise DriverError(f"cannot build the demo initramfs: no kernel module {name!r}")
        for dependency in _modinfo(index[name]).get("depends", "").split(","):
            if dependency:
                visit(dependency)
        order.append(index[name])

    for name in wanted:
        visit(name)
    return order


def module_name(path: str) -> str:
    """The name the kernel knows a module by: ``virtio-blk.ko.xz`` is ``virtio_blk``."""
    return Path(path).name.removesuffix(".xz").removesuffix(".ko").replace("-", "_")


def module_bytes(ko: Path) -> bytes:
    """A module's ELF bytes; ``.ko.xz`` (newer Debian kernels) is decompressed here, so the
    initramfs needs no decompressing insmod."""
    data = ko.read_bytes()
    return lzma.decompress(data) if ko.name.endswith(".xz") else data


def _modinfo(ko: Path) -> dict[str, str]:
    """The ``key=value`` strings of an ELF64 little-endian kernel module's ``.modinfo``."""
    data = module_bytes(ko)
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)

    def section(index: int) -> tuple[int, int, int]:
        name, _type, _flags, _addr, offset, size = struct.unpack_from(
            "<IIQQQQ", data, shoff + index * shentsize
        )
        return name, offset, size

    _, names_offset, _ = section(shstrndx)
    for index in range(shnum):
        name, offset, size = section(index)
        if data[names_offset + name:].startswith(b".modinfo\0"):
            fields = data[offset:offset + size].split(b"\0")
            return dict(f.decode().partition("=")[::2] for f in fields if b"=" in f)
    return {}
