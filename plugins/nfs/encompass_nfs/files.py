"""The files of an export, as the driver handles them: one small interface, two ways in.

:class:`ExportFiles` is what the driver asks of an export: look a path up, list, make and
remove folders and files, rename, change modes and owners, read and write a file at offsets.
Paths are relative to the export's top (``image/vol0.raw``; ``""`` is the top itself).
:class:`MountedExport` answers through a mount of the export on this host (``path``);
:class:`~encompass_nfs.client.LibnfsExport` through libnfs, with no mount (``url``).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path
from typing import Protocol

import attrs

from encompass_core.drivers import streaming
from encompass_core.errors import Conflict, DriverError, NotFound


@attrs.frozen
class Entry:
    """What ``lstat`` says of one path."""

    kind: str  # file | dir | symlink | other
    mode: int  # full st_mode
    size: int
    uid: int = 0
    gid: int = 0
    rdev: int = 0


def entry_of(st_mode: int, size: int, uid: int = 0, gid: int = 0, rdev: int = 0) -> Entry:
    """An :class:`Entry` from a ``stat`` result's fields."""
    if stat.S_ISREG(st_mode):
        kind = "file"
    elif stat.S_ISDIR(st_mode):
        kind = "dir"
    elif stat.S_ISLNK(st_mode):
        kind = "symlink"
    else:
        kind = "other"
    return Entry(kind, st_mode, size, uid, gid, rdev)


class Writer(Protocol):
    """A file being written: ``write_at``, ``truncate`` to its final size, ``close``; ``chunk``
    is the most bytes a copy should hand ``write_at`` at once."""

    chunk: int

    def write_at(self, offset: int, data: bytes) -> None: ...
    def truncate(self, size: int) -> None: ...
    def close(self) -> None: ...


class Reader(Protocol):
    """A file being read: its ``size``, ``read_at`` (a new buffer), ``read_into`` (a given one:
    the count read, short only at the end), ``close``."""

    size: int

    def read_at(self, offset: int, length: int) -> bytes: ...
    def read_into(self, offset: int, buffer: memoryview) -> int: ...
    def close(self) -> None: ...


class ExportFiles(Protocol):
    """The files of one export (see the module's docstring)."""

    label: str  # the export as messages name it: nfs://host/export or /mnt/path
    pool: str
    folder_modes: bool  # whether a folder's mode and owner can be set

    def lstat(self, rel: str) -> Entry | None: ...
    def listdir(self, rel: str) -> list[str]: ...
    def mkdir(self, rel: str, mode: int = 0o755) -> None: ...
    def rmdir(self, rel: str) -> None: ...
    def unlink(self, rel: str) -> None: ...
    def rename(self, source: str, target: str) -> None: ...
    def chmod(self, rel: str, mode: int) -> None: ...
    def chown(self, rel: str, uid: int, gid: int) -> None: ...
    def symlink(self, target: str, rel: str) -> None: ...
    def readlink(self, rel: str) -> str: ...
    def mknod(self, rel: str, mode: int, device: int) -> None: ...
    def create(self, rel: str, mode: int = 0o644) -> Writer: ...
    def open_read(self, rel: str) -> Reader: ...
    def close(self) -> None: ...


def error_for(files: ExportFiles, code: int, what: str, rel: str, detail: str = "") -> Exception:
    """The error a user reads for an errno from an export: names the pool and the path."""
    where = f"{files.label}/{rel}" if rel else files.label
    text = detail or os.strerror(code)
    message = f"pool '{files.pool}': cannot {what} {where}: {text}"
    if code == errno.ENOENT:
        return NotFound(message)
    if code == errno.EEXIST:
        return Conflict(message)
    return DriverError(message)


class _FdWriter:
    chunk = streaming.CHUNK

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def write_at(self, offset: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            done = os.pwrite(self.fd, view, offset)
            view, offset = view[done:], offset + done

    def truncate(self, size: int) -> None:
        os.ftruncate(self.fd, size)

    def close(self) -> None:
        try:
            os.fsync(self.fd)
        finally:
            os.close(self.fd)


class _FdReader:
    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.size = os.fstat(fd).st_size

    def read_at(self, offset: int, length: int) -> bytes:
        return os.pread(self.fd, length, offset)

    def read_into(self, offset: int, buffer: memoryview) -> int:
        return streaming.pread_into(self.fd, offset, buffer)

    def close(self) -> None:
        os.close(self.fd)


class MountedExport:
    """An export mounted on this host at ``root`` (any directory will do for tests)."""

    def __init__(self, root: Path, pool: str) -> None:
        self.root = Path(root)
        self.pool = pool
        self.label = str(self.root)
        self.folder_modes = True

    def local(self, rel: str) -> Path:
        """The path of ``rel`` on this host."""
        return self.root / rel if rel else self.root

    @contextlib.contextmanager
    def _checked(self, what: str, rel: str):
        try:
            yield
        except OSError as exc:
            raise error_for(self, exc.errno or errno.EIO, what, rel) from exc

    def lstat(self, rel: str) -> Entry | None:
        try:
            st = os.lstat(self.local(rel))
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise error_for(self, exc.errno or errno.EIO, "look up", rel) from exc
        return entry_of(st.st_mode, st.st_size, st.st_uid, st.st_gid, st.st_rdev)

    def listdir(self, rel: str) -> list[str]:
        with self._checked("list", rel):
            return sorted(os.listdir(self.local(rel)))

    def mkdir(self, rel: str, mode: int = 0o755) -> None:
        with self._checked("make the folder", rel):
            os.mkdir(self.local(rel), mode)
            os.chmod(self.local(rel), mode)

    def rmdir(self, rel: str) -> None:
        with self._checked("remove the folder", rel):
            os.rmdir(self.local(rel))

    def unlink(self, rel: str) -> None:
        with self._checked("remove", rel):
            os.unlink(self.local(rel))

    def rename(self, source: str, target: str) -> None:
        with self._checked(f"rename {source} to", target):
            os.rename(self.local(source), self.local(target))

    def chmod(self, rel: str, mode: int) -> None:
        with self._checked("change the mode of", rel):
            os.chmod(self.local(rel), mode)

    def chown(self, rel: str, uid: int, gid: int) -> None:
        with self._checked("change the owner of", rel):
            os.lchown(self.local(rel), uid, gid)

    def symlink(self, target: str, rel: str) -> None:
        with self._checked("make the link", rel):
            os.symlink(target, self.local(rel))

    def readlink(self, rel: str) -> str:
        with self._checked("read the link", rel):
            return os.readlink(self.local(rel))

    def mknod(self, rel: str, mode: int, device: int) -> None:
        with self._checked("make the node", rel):
            os.mknod(self.local(rel), mode, device)

    def create(self, rel: str, mode: int = 0o644) -> Writer:
        with self._checked("create", rel):
            return _FdWriter(os.open(self.local(rel), os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode))

    def open_read(self, rel: str) -> Reader:
        with self._checked("open", rel):
            return _FdReader(os.open(self.local(rel), os.O_RDONLY))

    def close(self) -> None:
        """Nothing held: the mount belongs to the host."""
