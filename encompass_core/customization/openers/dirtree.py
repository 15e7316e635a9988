"""Directory-tree volumes (format ``dir``): a guest's file tree in a directory on this server.

Every path is resolved by :mod:`.resolve` (chroot-like, never outside the root) through
directory descriptors: each directory is opened with ``O_NOFOLLOW`` relative to its parent's
descriptor (``openat``), and files are opened, created, renamed and removed relative to their
directory's descriptor, also with ``O_NOFOLLOW``. A symlink swapped in while we work, or a
symlinked parent directory pointing at the host, cannot lead a read or write outside the
tree: the swap makes the operation fail with :class:`~encompass_core.errors.ConfinementError`.

Writes go to a temporary file in the same directory, are flushed, then renamed over the old
file (atomic). A replaced file keeps its mode and owner unless new ones are given; a new file
gets mode 0644 and its directory's owner.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat as stat_module

from encompass_core.customization.access import FileAccess, VolumeRef
from encompass_core.customization.openers.base import ResolvingAccess, kind_of_mode
from encompass_core.customization.openers.resolve import Entry, Resolved
from encompass_core.errors import ConfinementError, DriverError, NotFound

_DIR_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _entry(st: os.stat_result) -> Entry:
    return Entry(
        kind=kind_of_mode(st.st_mode),
        mode=st.st_mode,
        uid=st.st_uid,
        gid=st.st_gid,
        size=st.st_size,
        inode=st.st_ino,
    )


class FdNamespace:
    """Directory handles are ``O_PATH`` descriptors; lookups are ``lstat`` relative to them."""

    def __init__(self, root_fd: int, label: str) -> None:
        self.root_fd = root_fd
        self.label = label

    def root(self) -> int:
        return self.root_fd

    def lookup(self, directory: int, name: str) -> Entry | None:
        try:
            return _entry(os.stat(name, dir_fd=directory, follow_symlinks=False))
        except FileNotFoundError:
            return None

    def readlink(self, directory: int, name: str, entry: Entry) -> str:
        try:
            return os.readlink(name, dir_fd=directory)
        except OSError as error:
            raise ConfinementError(
                f"symlink {name!r} in {self.label} changed while being resolved ({error}); "
                "make sure nothing else is changing the volume, then retry"
            ) from error

    def enter(self, directory: int, name: str, entry: Entry) -> int:
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=directory)
        except OSError as error:
            raise ConfinementError(
                f"directory {name!r} in {self.label} changed while being resolved ({error}); "
                "make sure nothing else is changing the volume, then retry"
            ) from error
        if os.fstat(fd).st_ino != entry.inode:
            os.close(fd)
            raise ConfinementError(
                f"directory {name!r} in {self.label} was replaced while being resolved; "
                "make sure nothing else is changing the volume, then retry"
            )
        return fd

    def release(self, handle: int) -> None:
        os.close(handle)


class DirTreeAccess(ResolvingAccess):
    """The files of a directory-tree volume (see the module docstring for the rules)."""

    def __init__(self, volume: VolumeRef, writable: bool) -> None:
        super().__init__(volume, writable)
        try:
            self._root_fd = os.open(volume.path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError as error:
            raise NotFound(f"{self.label} does not exist; check the volume's path") from error
        except OSError as error:
            raise DriverError(f"cannot open {self.label}: {error.strerror}") from error
        self._names = FdNamespace(self._root_fd, self.label)

    def _changed(self, path: str, error: OSError) -> ConfinementError:
        return ConfinementError(
            f"{path} in {self.label} changed while being used ({error.strerror}); "
            "make sure nothing else is changing the volume, then retry"
        )

    def _open_in(self, path: str, where: Resolved, flags: int) -> int:
        """Open the resolved name itself (``O_NOFOLLOW``), or its directory when it has none."""
        if where.name is None:
            return os.open(".", flags, dir_fd=where.directory)
        try:
            return os.open(where.name, flags | os.O_NOFOLLOW, dir_fd=where.directory)
        except OSError as error:
            raise self._changed(path, error) from error

    def _read_file(self, path: str, where: Resolved, entry: Entry) -> bytes:
        fd = self._open_in(path, where, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as stream:
            if not stat_module.S_ISREG(os.fstat(stream.fileno()).st_mode):
                raise self._changed(path, OSError(errno.EINVAL, "not a regular file"))
            return stream.read()

    def _directory_entry(self, directory: int) -> Entry:
        return _entry(os.fstat(directory))

    def _write_file(self, path: str, where: Resolved, data: bytes, mode: int, uid: int, gid: int) -> None:
        """Write beside the file, then rename over it (atomic)."""
        directory = where.directory
        # A short name of its own: the file's name may take all of NAME_MAX already.
        temp = f".encompass-{secrets.token_hex(8)}.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(temp, flags, 0o600, dir_fd=directory)
        except OSError as error:
            raise DriverError(
                f"cannot create a file beside {path} in {self.label}: {error.strerror}"
            ) from error
        try:
            with os.fdopen(fd, "wb") as stream:
                stream.write(data)
                stream.flush()
                self._set_owner_and_mode(path, stream.fileno(), mode, uid, gid)
                os.fsync(stream.fileno())
            os.rename(temp, where.name, src_dir_fd=directory, dst_dir_fd=directory)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp, dir_fd=directory)
            raise
        self._sync_directory(directory)

    def _set_owner_and_mode(self, path: str, fd: int, mode: int, uid: int, gid: int) -> None:
        st = os.fstat(fd)
        try:
            if (st.st_uid, st.st_gid) != (uid, gid):
                os.fchown(fd, uid, gid)
            os.fchmod(fd, mode)  # after chown, which clears set-id bits
        except PermissionError as error:
            raise DriverError(
                f"cannot give {path} in {self.label} owner {uid}:{gid} and mode {mode:#o}: "
                "permission denied; run as root, or leave the owner as it is"
            ) from error

    def _sync_directory(self, directory: int) -> None:
        fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=directory)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _list(self, path: str, where: Resolved) -> list[str]:
        fd = self._open_in(path, where, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            return os.listdir(fd)
        finally:
            os.close(fd)

    def _make_directory(self, path: str, where: Resolved, mode: int, parent: Entry) -> None:
        try:
            os.mkdir(where.name, mode, dir_fd=where.directory)
            fd = os.open(
                where.name,
                os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                dir_fd=where.directory,
            )
        except OSError as error:
            raise DriverError(f"cannot create directory {path} in {self.label}: {error.strerror}") from error
        try:
            self._set_owner_and_mode(path, fd, mode, parent.uid, parent.gid)
        finally:
            os.close(fd)

    def _remove_entry(self, path: str, where: Resolved) -> None:
        try:
            os.unlink(where.name, dir_fd=where.directory)
        except FileNotFoundError as error:
            raise self._missing(path) from error
        except IsADirectoryError as error:
            raise self._changed(path, error) from error

    def _make_symlink(self, path: str, where: Resolved, target: str, parent: Entry) -> None:
        try:
            os.symlink(target, where.name, dir_fd=where.directory)
        except OSError as error:
            raise DriverError(f"cannot create symlink {path} in {self.label}: {error.strerror}") from error
        made = os.stat(where.name, dir_fd=where.directory, follow_symlinks=False)
        if (made.st_uid, made.st_gid) != (parent.uid, parent.gid):
            try:
                os.chown(where.name, parent.uid, parent.gid, dir_fd=where.directory,
                         follow_symlinks=False)
            except PermissionError as error:
                raise DriverError(f"cannot give symlink {path} in {self.label} owner "
                                  f"{parent.uid}:{parent.gid}: permission denied; run as root") from error
        self._sync_directory(where.directory)

    def _remove_directory(self, path: str, where: Resolved) -> None:
        try:
            os.rmdir(where.name, dir_fd=where.directory)
        except FileNotFoundError as error:
            raise self._missing(path) from error
        except OSError as error:
            if error.errno in (errno.ENOTEMPTY, errno.EEXIST):
                raise self._not_empty(path) from error
            raise self._changed(path, error) from error

    def close(self) -> None:
        """Release the root directory descriptor. Idempotent."""
        if not self.closed:
            os.close(self._root_fd)
        super().close()


class DirTreeOpener:
    """Opens volumes of format ``dir``: a directory holding a guest's file tree."""

    name = "dirtree"

    def can_open(self, volume: VolumeRef) -> str | None:
        """None for a ``dir`` volume that is a directory, else why not."""
        if volume.format != "dir":
            return f"dirtree opens directory trees, not {volume.format} images"
        if volume.partition is not None:
            return "a directory tree has no partitions"
        if not os.path.isdir(volume.path):
            return f"{volume.path} is not a directory"
        return None

    def open(self, volume: VolumeRef, writable: bool) -> FileAccess:
        """Open the tree; close the result (or use it in a ``with`` block)."""
        return DirTreeAccess(volume, writable)
