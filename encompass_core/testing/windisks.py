"""Small Windows-like disks for tests: an NTFS or FAT filesystem, whole or in an MBR/GPT partition.

Built with the real tools (``sfdisk``, ``mkntfs -F -Q``, ``mkfs.vfat``), filled without
mounting (``ntfscp`` cannot make directories, so NTFS trees are filled through a short
ntfs-3g mount, as root), and read back with the tools a user would use: ``ntfscat`` and
``mcopy``. Debian packages: fdisk, ntfs-3g, dosfstools, mtools.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

MIB = 1 << 20
PARTITION_START = 1 * MIB  # sector 2048, as Windows' own partitioning tools put it
# Partition types: "Microsoft basic data" (GPT) and NTFS/exFAT 0x07, FAT16 LBA 0x0e (MBR).
_GPT_BASIC_DATA = "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7"
_MBR_TYPES = {"ntfs": "7", "fat": "e"}
_MTOOLS_ENV = {"MTOOLSRC": "/dev/null", "MTOOLS_SKIP_CHECK": "1", "LC_ALL": "C"}


def _run(*command: str, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(command, capture_output=True, **kwargs)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed: {done.stderr.decode(errors='replace')}")
    return done


def _mtools_env() -> dict[str, str]:
    return {**os.environ, **_MTOOLS_ENV}


def make_filesystem(path: Path, kind: str, size_mib: int, label: str = "WINDOWS") -> None:
    """An empty NTFS (``kind='ntfs'``) or FAT32 (``'fat'``) filesystem filling ``path``."""
    with open(path, "wb") as image:
        image.truncate(size_mib * MIB)
    if kind == "ntfs":
        _run("mkntfs", "-F", "-Q", "-q", "-L", label, str(path))
    else:
        _run("mkfs.vfat", "-n", label[:11], str(path))  # FAT16 at these sizes


def fill(path: Path, kind: str, files: Mapping[str, bytes | str | None], offset: int = 0) -> None:
    """Put ``files`` (path → content; None: an empty directory; text: a symlink to it, NTFS
    only) into the filesystem at ``offset`` of ``path``; parent directories are made."""
    if kind == "fat":
        image = f"{path}@@{offset}" if offset else str(path)
        made: set[str] = set()
        for name, content in files.items():
            parts = name.strip("/").split("/")
            depth = len(parts) if content is None else len(parts) - 1
            for i in range(1, depth + 1):
                directory = "/" + "/".join(parts[:i])
                if directory not in made:
                    made.add(directory)
                    subprocess.run(["mmd", "-i", image, "::" + directory], capture_output=True,
                                   env=_mtools_env())  # fmt: skip
            if content is not None:
                with tempfile.NamedTemporaryFile() as source:
                    source.write(content)
                    source.flush()
                    _run("mcopy", "-o", "-i", image, source.name, "::" + name, env=_mtools_env())
        return
    assert offset == 0, "fill NTFS before putting it into a partition"
    with tempfile.TemporaryDirectory() as mountpoint:
        _run("ntfs-3g", str(path), mountpoint)
        try:
            for name, content in files.items():
                target = Path(mountpoint) / name.lstrip("/")
                if content is None:
                    target.mkdir(parents=True, exist_ok=True)
                elif isinstance(content, str):
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.symlink_to(content)
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(content)
        finally:
            _run("umount", mountpoint)


def make_disk(path: Path, kind: str, scheme: str | None, files: Mapping[str, bytes | str | None] = (),
              size_mib: int = 24) -> int | None:
    """A disk image holding one ``kind`` filesystem with ``files``: the whole image when
    ``scheme`` is None, else partition 1 of an ``'mbr'`` or ``'gpt'`` table. Returns the
    partition number (1) or None."""
    files = dict(files)
    if scheme is None:
        make_filesystem(path, kind, size_mib)
        fill(path, kind, files)
        return None
    filesystem = path.with_name(path.name + ".fs")
    make_filesystem(filesystem, kind, size_mib)
    if kind == "ntfs":
        fill(filesystem, kind, files)
    with open(path, "wb") as image:
        image.truncate((size_mib + 2) * MIB)
    sectors = size_mib * MIB // 512
    table = (f"label: gpt\nstart=2048, size={sectors}, type={_GPT_BASIC_DATA}\n" if scheme == "gpt"
             else f"label: dos\nstart=2048, size={sectors}, type={_MBR_TYPES[kind]}\n")
    _run("sfdisk", "-q", str(path), input=table.encode())
    _run("dd", f"if={filesystem}", f"of={path}", "bs=1M", f"seek={PARTITION_START // MIB}",
         "conv=notrunc", "status=none")
    filesystem.unlink()
    if kind == "fat":
        fill(path, kind, files, PARTITION_START)
    return 1


def extract(path: Path, partition: int | None, into: Path) -> Path:
    """The filesystem of ``path`` (partition 1 at 1 MiB, or the whole image) copied to ``into``."""
    if partition is None:
        return path
    size = path.stat().st_size - PARTITION_START - 1 * MIB  # GPT keeps a backup table at the end
    _run("dd", f"if={path}", f"of={into}", "bs=1M", f"skip={PARTITION_START // MIB}",
         f"count={size // MIB}", "status=none")
    return into


def ntfs_read(path: Path, partition: int | None, name: str, work: Path) -> bytes | None:
    """A file read back with ``ntfscat`` (None when absent)."""
    filesystem = extract(path, partition, work / "ntfs-readback.img")
    done = subprocess.run(["ntfscat", str(filesystem), name], capture_output=True)
    return done.stdout if done.returncode == 0 else None


def fat_read(path: Path, partition: int | None, name: str) -> bytes | None:
    """A file read back with ``mcopy`` (None when absent)."""
    image = f"{path}@@{PARTITION_START}" if partition else str(path)
    done = subprocess.run(["mcopy", "-n", "-i", image, "::" + name, "-"], capture_output=True,
                          env=_mtools_env())
    return done.stdout if done.returncode == 0 else None
