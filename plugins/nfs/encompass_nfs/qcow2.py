"""What the driver reads of a qcow2 header (through the export, no qemu-img on NFS needed):
its virtual size, its backing file and that file's format; and overlays made with qemu-img."""

from __future__ import annotations

import posixpath
import struct

import attrs

from encompass_core.drivers import qemuimg

from .files import ExportFiles

MAGIC = b"QFI\xfb"
_BACKING_FORMAT = 0xE2792ACA  # header extension: the backing file's format


@attrs.frozen
class Qcow2Header:
    """The facts of one qcow2 file."""

    size: int  # virtual size in bytes
    backing: str | None = None  # as written in the file (relative to the file's folder here)
    backing_format: str | None = None


def read_header(files: ExportFiles, rel: str) -> Qcow2Header | None:
    """The header of ``rel``, or None when it is not a qcow2 file."""
    reader = files.open_read(rel)
    try:
        head = reader.read_at(0, 65536)
        if len(head) < 72 or head[:4] != MAGIC:
            return None
        version, backing_offset, backing_length = struct.unpack_from(">IQI", head, 4)
        (size,) = struct.unpack_from(">Q", head, 24)
        backing = backing_format = None
        if backing_offset:
            raw = head[backing_offset:backing_offset + backing_length]
            if len(raw) < backing_length:
                raw = reader.read_at(backing_offset, backing_length)
            backing = raw.decode(errors="replace")
        offset = struct.unpack_from(">I", head, 100)[0] if version >= 3 else 72
        while offset + 8 <= len(head):
            kind, length = struct.unpack_from(">II", head, offset)
            if kind == 0:
                break
            if kind == _BACKING_FORMAT:
                backing_format = head[offset + 8:offset + 8 + length].decode(errors="replace")
            offset += 8 + (length + 7) // 8 * 8
        return Qcow2Header(size, backing, backing_format)
    finally:
        reader.close()


def backing_path(rel: str, backing: str) -> str | None:
    """Where a backing file named in ``rel`` lies in the export; None when it is outside (an
    absolute path or a URL: not a file this pool made)."""
    if backing.startswith("/") or "://" in backing:
        return None
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(rel), backing))
    return None if joined.startswith("../") or joined == ".." else joined


def make_overlay(target: str, backing: str, backing_format: str, size: int) -> None:
    """A qcow2 overlay at ``target`` (a file of this host) reading through ``backing``, written
    as given (relative: it stays right wherever the export is mounted)."""
    qemuimg.qemu_img("create", "-q", "-f", "qcow2", "-u", "-F", backing_format, "-b", backing,
                     target, str(size))
