"""What every built-in :class:`~encompass_core.customization.access.FileAccess` shares.

Openers return objects derived from :class:`FileAccessBase`: context managers that refuse use
after :meth:`close` and writes when opened read-only, and that name their volume in errors.
Openers that walk paths themselves with :mod:`.resolve` (directory trees, ext filesystems)
derive from :class:`ResolvingAccess`, which holds every check and message they share and
leaves them only the few steps that touch the volume.
"""

from __future__ import annotations

import os
import stat as stat_module
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any

from encompass_core.customization.access import FileKind, FileStat, VolumeRef
from encompass_core.customization.openers.resolve import (
    PATH_MAX,
    Entry,
    Resolved,
    check_path,
    resolve,
)
from encompass_core.errors import Conflict, InvalidInput, NotFound

# New files get this mode unless the caller says otherwise (owner: the parent directory's).
DEFAULT_FILE_MODE = 0o644


def describe_volume(volume: VolumeRef) -> str:
    """A short name for a volume in messages: ``'/pool/web01.qcow2' partition 2``."""
    where = f"'{volume.path}'"
    if volume.partition is not None:
        where += f" partition {volume.partition}"
    return f"volume {where}"


def kind_of_mode(mode: int) -> FileKind:
    """The :data:`FileKind` of a full ``st_mode`` (type bits included)."""
    if stat_module.S_ISREG(mode):
        return "file"
    if stat_module.S_ISDIR(mode):
        return "dir"
    if stat_module.S_ISLNK(mode):
        return "symlink"
    return "other"


# Each kind of entry as named in messages ("a other" would say nothing).
_KIND_PHRASES = {"file": "a regular file", "dir": "a directory", "symlink": "a symlink",
                 "other": "a special file (device, FIFO or socket)"}


def kind_phrase(entry: Entry | None) -> str:
    """What an entry is, for a message; None (a path reached without a last name) is a directory."""
    return "a directory" if entry is None else _KIND_PHRASES.get(entry.kind, f"a {entry.kind}")


def check_mode(mode: int | None) -> int | None:
    """Refuse a mode that is not permission bits (``0o7777`` at most)."""
    if mode is not None and not 0 <= mode <= 0o7777:
        raise InvalidInput(f"mode {mode:#o} is not a permission mode; give permission bits only, e.g. 0o644")
    return mode


def settle_mode_and_owner(
    mode: int | None,
    uid: int | None,
    gid: int | None,
    old: Entry | None,
    directory_owner: Callable[[], tuple[int, int]],
) -> tuple[int, int, int]:
    """The mode and owner a written file gets: those given, else the replaced file's (``old``),
    else mode 0644 and the owner of its directory (asked only when needed)."""
    if old is not None:
        return (
            stat_module.S_IMODE(old.mode) if mode is None else mode,
            old.uid if uid is None else uid,
            old.gid if gid is None else gid,
        )
    if uid is None or gid is None:
        directory_uid, directory_gid = directory_owner()
        uid = directory_uid if uid is None else uid
        gid = directory_gid if gid is None else gid
    return DEFAULT_FILE_MODE if mode is None else mode, uid, gid


def check_link_target(path: str, target: str, label: str) -> str:
    """Refuse a symlink text no guest could use (empty, a NUL, a line break, longer than a path)."""
    if not isinstance(target, str) or not target or any(c in target for c in "\0\n\r"):
        raise InvalidInput(f"cannot make symlink {path} in {label}: its target {target!r} is "
                           "empty or holds a NUL or a line break")
    if len(os.fsencode(target)) > PATH_MAX:
        raise InvalidInput(f"cannot make symlink {path} in {label}: its target is longer than "
                           f"{PATH_MAX} bytes")
    return target


def seconds(value: object, setting: str = "timeout") -> float:
    """A time limit from an opener's settings; a TypeError (reported as a bad setting of
    ``[openers.NAME]``) unless it is a positive number."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise TypeError(f"{setting} must be a positive number of seconds, not {value!r}")
    return float(value)


class FileAccessBase:
    """Context-manager behaviour and the open/writable checks of every built-in access."""

    def __init__(self, volume: VolumeRef, writable: bool) -> None:
        self.volume = volume
        self.writable = writable
        self.closed = False

    @property
    def label(self) -> str:
        """The volume as named in messages."""
        return describe_volume(self.volume)

    def __enter__(self) -> FileAccessBase:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _check_open(self) -> None:
        if self.closed:
            raise InvalidInput(f"{self.label} was already closed; open it again to use it")

    def _check_writable(self, path: str) -> None:
        self._check_open()
        if not self.writable:
            raise InvalidInput(
                f"cannot change {path} in {self.label}: it was opened read-only; open it with writable=True"
            )

    def _missing(self, path: str) -> NotFound:
        return NotFound(f"{path} does not exist in {self.label}; check the path")

    def _not_a_file(self, path: str, entry: Entry | None) -> InvalidInput:
        return InvalidInput(
            f"cannot write {path} in {self.label}: it is {kind_phrase(entry)}, not a regular file"
        )

    def write(self, path: str, data: bytes, mode: int | None = None, uid: int | None = None,
              gid: int | None = None) -> None:  # fmt: skip
        """Create or replace a regular file (through a final symlink, as the guest would).

        A replaced file keeps its mode and owner unless new ones are given; a new file gets
        mode 0644 and its directory's owner (see :func:`settle_mode_and_owner`).
        """
        self._check_writable(path)
        check_mode(mode)
        self._write(path, data, mode, uid, gid)

    def _write(self, path: str, data: bytes, mode: int | None, uid: int | None, gid: int | None) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Release the volume. Idempotent."""
        self.closed = True


class ResolvingAccess(FileAccessBase):
    """An access whose paths are walked by :func:`.resolve.resolve` over ``self._names``.

    A subclass sets ``_names`` (its :class:`~.resolve.Namespace`) and supplies the steps that
    touch the volume: ``_read_file``, ``_directory_entry``, ``_write_file``, ``_list``,
    ``_make_directory``, ``_remove_entry``, ``_make_symlink`` and ``_remove_directory``.
    Every check, default and message is here.
    """

    _names: Any

    def _resolve(self, path: str, follow_final: bool = True) -> AbstractContextManager[Resolved[Any]]:
        self._check_open()
        return resolve(self._names, path, self.label, follow_final)

    def _require_file(self, path: str, where: Resolved[Any]) -> Entry:
        if where.name is not None and where.entry is None:
            raise self._missing(path)
        if where.entry is None or where.entry.kind != "file":
            raise InvalidInput(f"{path} in {self.label} is {kind_phrase(where.entry)}, not a regular file")
        return where.entry

    def read(self, path: str) -> bytes:
        """Return the content of a regular file (symlinks followed inside the volume)."""
        with self._resolve(path) as where:
            return self._read_file(path, where, self._require_file(path, where))

    def _write(self, path: str, data: bytes, mode: int | None, uid: int | None, gid: int | None) -> None:
        with self._resolve(path) as where:
            if where.name is None or (where.entry is not None and where.entry.kind != "file"):
                raise self._not_a_file(path, where.entry)

            def directory_owner() -> tuple[int, int]:
                directory = self._directory_entry(where.directory)
                return directory.uid, directory.gid

            settled = settle_mode_and_owner(mode, uid, gid, where.entry, directory_owner)
            self._write_file(path, where, data, *settled)

    def exists(self, path: str) -> bool:
        """Whether the path exists (a dangling symlink exists)."""
        try:
            with self._resolve(path, follow_final=False) as where:
                return where.name is None or where.entry is not None
        except NotFound:
            return False

    def stat(self, path: str) -> FileStat:
        """Describe the path itself, without following a final symlink."""
        with self._resolve(path, follow_final=False) as where:
            if where.name is None:
                entry = self._directory_entry(where.directory)
            elif where.entry is None:
                raise self._missing(path)
            else:
                entry = where.entry
            target = None
            if entry.kind == "symlink":
                target = self._names.readlink(where.directory, where.name, entry)
            mode = stat_module.S_IMODE(entry.mode)
            return FileStat(entry.kind, entry.size, mode, entry.uid, entry.gid, target)

    def listdir(self, path: str) -> list[str]:
        """Names in a directory, sorted, without ``.`` and ``..``."""
        with self._resolve(path) as where:
            if where.name is not None:
                if where.entry is None:
                    raise self._missing(path)
                if where.entry.kind != "dir":
                    raise InvalidInput(f"{path} in {self.label} is not a directory")
            return sorted(self._list(path, where))

    def mkdir(self, path: str, mode: int = 0o755, parents: bool = False) -> None:
        """Create a directory (and missing parents when asked); owner: its parent's."""
        self._check_writable(path)
        check_mode(mode)
        if parents:
            parts = check_path(path, self.label)
            for depth in range(1, len(parts)):
                prefix = "/" + "/".join(parts[:depth])
                if parts[depth - 1] != ".." and not self.exists(prefix):
                    self.mkdir(prefix, mode)
        with self._resolve(path) as where:
            if where.name is None or where.entry is not None:
                if parents and (where.name is None or where.entry.kind == "dir"):
                    return
                raise Conflict(f"cannot create directory {path} in {self.label}: it exists")
            self._make_directory(path, where, mode, self._directory_entry(where.directory))

    def remove(self, path: str) -> None:
        """Remove a file or symlink (not a directory); a final symlink itself is removed."""
        self._check_writable(path)
        with self._resolve(path, follow_final=False) as where:
            if where.name is None or (where.entry is not None and where.entry.kind == "dir"):
                raise InvalidInput(f"cannot remove {path} in {self.label}: it is a directory")
            if where.entry is None:
                raise self._missing(path)
            self._remove_entry(path, where)

    def symlink(self, path: str, target: str) -> None:
        """Create the symlink ``path`` holding ``target``; owner: its directory's."""
        self._check_writable(path)
        check_link_target(path, target, self.label)
        with self._resolve(path, follow_final=False) as where:
            if where.name is None or where.entry is not None:
                raise Conflict(f"cannot create symlink {path} in {self.label}: it exists")
            self._make_symlink(path, where, target, self._directory_entry(where.directory))

    def rmdir(self, path: str) -> None:
        """Remove an empty directory (a final symlink is not followed)."""
        self._check_writable(path)
        with self._resolve(path, follow_final=False) as where:
            if where.name is None:
                raise InvalidInput(f"cannot remove {path} in {self.label}: name the directory "
                                   "itself (not / or a path ending in ..)")
            if where.entry is None:
                raise self._missing(path)
            if where.entry.kind != "dir":
                raise InvalidInput(f"cannot remove {path} in {self.label}: it is "
                                   f"{kind_phrase(where.entry)}, not a directory")
            self._remove_directory(path, where)

    def _not_empty(self, path: str) -> Conflict:
        return Conflict(f"cannot remove directory {path} in {self.label}: it is not empty")

    # The steps a subclass supplies; ``where`` is the resolved place, still held.

    def _read_file(self, path: str, where: Resolved[Any], entry: Entry) -> bytes:
        raise NotImplementedError

    def _directory_entry(self, directory: Any) -> Entry:
        """The entry (kind, mode, owner) of a directory reached by resolving."""
        raise NotImplementedError

    def _write_file(self, path: str, where: Resolved[Any], data: bytes, mode: int, uid: int,
                    gid: int) -> None:  # fmt: skip
        raise NotImplementedError

    def _list(self, path: str, where: Resolved[Any]) -> Iterator[str] | list[str]:
        raise NotImplementedError

    def _make_directory(self, path: str, where: Resolved[Any], mode: int, parent: Entry) -> None:
        raise NotImplementedError

    def _remove_entry(self, path: str, where: Resolved[Any]) -> None:
        raise NotImplementedError

    def _make_symlink(self, path: str, where: Resolved[Any], target: str, parent: Entry) -> None:
        raise NotImplementedError

    def _remove_directory(self, path: str, where: Resolved[Any]) -> None:
        raise NotImplementedError


class CannotOpen(InvalidInput):
    """Raised by an opener's ``open`` when, looking closer than ``can_open`` did, it finds it
    cannot open this volume after all (no ext filesystem in a qcow2 image...):
    :func:`~encompass_core.customization.openers.open_volume` then tries the next opener."""
