"""Disks in and out of packages as VMDK files, through ``qemu-img``.

Out: a volume exposed by its pool (a file, a device, a URL QEMU reads) becomes a
stream-optimized VMDK with ``qemu-img convert -O vmdk -o subformat=streamOptimized``, reading
through a copy-on-write chain. In: a package's VMDK is checked first (a single-file sparse
VMDK by its header, whose embedded descriptor names no parent and no other extent: nothing
else can be opened through it), then read in place (at its offset inside the OVA) into a
qcow2 file the pool imports.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
from collections.abc import Callable

from .. import rundir
from ..errors import DriverError, NotSupported
from .archive import Member

#: Formats of exposed volumes qemu-img is told to read (anything else is refused, not guessed).
READABLE = ("raw", "qcow2", "vmdk")
_HEADER = struct.Struct("<4sIIQQQQIQQQ?4sH")
_PROGRESS = re.compile(rb"\((\d+(?:\.\d+)?)/100%\)")


def _qemu_img() -> str:
    exe = shutil.which("qemu-img")
    if exe is None:
        raise DriverError("qemu-img is not installed; install the Debian package qemu-utils")
    return exe


def run_with_progress(args: list[str], what: str, total: int, progress: Callable[[int], None] | None,
                      timeout: float) -> None:
    """Run ``qemu-img ARGS -p``, turning its percentages into ``progress(bytes)`` of ``total``."""
    process = rundir.start([_qemu_img(), *args], what, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    reported = 0
    try:
        buffer = b""
        while True:
            chunk = process.stdout.read1(4096)
            if not chunk:
                break
            buffer = (buffer + chunk)[-256:]
            found = _PROGRESS.findall(buffer)
            if found and progress:
                done = int(total * float(found[-1]) / 100)
                if done > reported:
                    progress(done - reported)
                    reported = done
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise DriverError(f"{what} did not finish in {timeout:g} s and was stopped") from None
        stderr = process.stderr.read().decode(errors="replace").strip()
    except BaseException:
        rundir.stop(process, grace=2.0)
        raise
    rundir.forget_helper(process.pid)
    if process.returncode != 0:
        lines = stderr.splitlines()
        detail = lines[-1].removeprefix("qemu-img: ") if lines else f"exit status {process.returncode}"
        raise DriverError(f"{what} failed: {detail}")
    if progress and total > reported:
        progress(total - reported)


def to_stream_optimized(source: str, source_format: str, target: str, size: int,
                        progress: Callable[[int], None] | None, timeout: float) -> None:
    """Write volume ``source`` as a stream-optimized VMDK at ``target``."""
    if source_format not in READABLE:
        raise NotSupported(f"a {source_format} volume cannot go into a package: disks are VMDK files "
                           "made from raw, qcow2 or vmdk volumes (a directory tree is not a disk)")
    run_with_progress(["convert", "-p", "-f", source_format, "-O", "vmdk", "-o",
                       "subformat=streamOptimized,adapter_type=lsilogic", source, target],
                      "qemu-img convert to VMDK", size, progress, timeout)


def check(member: Member, where: str) -> tuple[str, int]:
    """The subformat and virtual size of the VMDK ``member``; refused unless it is one sparse
    file that names no parent and no other extent."""
    with open(member.path, "rb") as handle:
        handle.seek(member.offset)
        head = handle.read(_HEADER.size)
        if len(head) < _HEADER.size or head[:4] != b"KDMV":
            raise NotSupported(f"{where}: disk '{member.name}' is not a sparse VMDK (it does not start "
                               "with the VMDK header); only stream-optimized or sparse VMDK disks "
                               "are imported")
        (_magic, _version, _flags, capacity, _grain, desc_offset, desc_size,
         *_rest) = _HEADER.unpack(head)
        text = ""
        if desc_offset and desc_size and (desc_offset + desc_size) * 512 <= member.size:
            handle.seek(member.offset + desc_offset * 512)
            text = handle.read(min(desc_size * 512, 1 << 20)).split(b"\0")[0].decode(errors="replace")
    create = re.search(r'createType\s*=\s*"([^"]*)"', text)
    subformat = create.group(1) if create else ""
    if subformat not in ("streamOptimized", "monolithicSparse"):
        raise NotSupported(f"{where}: disk '{member.name}' is a {subformat or 'unknown'} VMDK; only "
                           "stream-optimized or sparse single-file VMDKs are imported")
    parent = re.search(r"parentCID\s*=\s*(\S+)", text)
    if parent and parent.group(1).lower() != "ffffffff":
        raise NotSupported(f"{where}: disk '{member.name}' is a delta of another disk (it names a "
                           "parent); import a standalone disk")
    extents = re.findall(r'^\s*RW\s+\d+\s+\S+\s+"([^"]*)"', text, re.MULTILINE)
    if len(extents) > 1:
        raise NotSupported(f"{where}: disk '{member.name}' has {len(extents)} extents; only single-file "
                           "VMDKs are imported")
    return subformat, capacity * 512


def qemu_source(member: Member) -> str:
    """A ``json:`` name through which QEMU reads exactly the member's bytes as a VMDK with no
    backing file (the OVA is opened as a plain file, at the member's offset)."""
    node = {"driver": "file", "filename": member.path}
    if member.offset or member.size != os.path.getsize(member.path):
        node = {"driver": "raw", "offset": member.offset, "size": member.size, "file": node}
    return "json:" + json.dumps({"driver": "vmdk", "backing": None, "file": node})


def from_vmdk(member: Member, target: str, size: int, progress: Callable[[int], None] | None,
              timeout: float) -> None:
    """Convert the package's VMDK ``member`` into the qcow2 file ``target``."""
    run_with_progress(["convert", "-p", "-O", "qcow2", qemu_source(member), target],
                      "qemu-img convert from VMDK", size, progress, timeout)
