"""Safe access to the files inside one volume: the contract every volume opener fulfils.

A *volume opener* turns a volume (a directory tree, a raw or qcow2 disk image, one partition
of it) into a :class:`FileAccess`. Every path given to a ``FileAccess`` is a path *inside the
volume* (``/etc/hostname``); it is resolved inside the volume and may never lead a read or a
write outside it, whatever ``..`` or symlinks (absolute or relative) the image holds:
a violation raises :class:`encompass_core.errors.ConfinementError`.
"""

from __future__ import annotations

from typing import Literal, Protocol

import attrs

FileKind = Literal["file", "dir", "symlink", "other"]


@attrs.frozen
class FileStat:
    """What a :class:`FileAccess` tells of one path (``lstat``-like: a symlink is not followed)."""

    kind: FileKind
    size: int
    mode: int  # permission bits only (0o7777)
    uid: int
    gid: int
    target: str | None = None  # the link's text when kind == "symlink"


@attrs.frozen
class VolumeRef:
    """The on-disk facts an opener needs to reach one volume's files."""

    path: str  # file or directory on the utility server (or a URL an opener knows: iscsi://...)
    format: str  # raw | qcow2 | dir | whatever the pool exposes (openers say what they can open)
    partition: int | None = None  # 1-based partition number inside a disk image; None: whole


class FileAccess(Protocol):
    """Files inside one opened volume. Writes are visible once :meth:`close` returns."""

    def read(self, path: str) -> bytes:
        """Return the content of a regular file (symlinks followed, but only inside the volume)."""

    def write(
        self,
        path: str,
        data: bytes,
        mode: int | None = None,
        uid: int | None = None,
        gid: int | None = None,
    ) -> None:
        """Create or replace a regular file; its parent directory must exist."""

    def exists(self, path: str) -> bool:
        """Whether the path exists (a dangling symlink exists)."""

    def stat(self, path: str) -> FileStat:
        """Describe the path itself, without following a final symlink."""

    def listdir(self, path: str) -> list[str]:
        """Names in a directory, sorted, without ``.`` and ``..``."""

    def mkdir(self, path: str, mode: int = 0o755, parents: bool = False) -> None:
        """Create a directory (and missing parents when asked)."""

    def remove(self, path: str) -> None:
        """Remove a file or symlink (not a directory)."""

    def symlink(self, path: str, target: str) -> None:
        """Create the symlink ``path`` holding ``target`` (not followed: the guest resolves it).

        ``path`` must not exist and its parent directory must; the link gets the directory's
        owner, as a new file does."""

    def rmdir(self, path: str) -> None:
        """Remove an empty directory (a final symlink is not followed)."""

    def close(self) -> None:
        """Flush and release the volume (unmount, stop helpers). Idempotent."""

    def __enter__(self) -> FileAccess:
        """Use the access in a ``with`` block; it is closed at the block's end."""

    def __exit__(self, *exc_info: object) -> None:
        """Close the access (:meth:`close`)."""


class VolumeOpener(Protocol):
    """A way to reach the files inside a volume, registered by ``encompass_volume_openers``."""

    name: str
    #: What its ``[openers.NAME]`` table may hold (``encompass_core.settings.Setting``); the
    #: opener is built with the checked table as keyword arguments.
    settings: tuple = ()

    def can_open(self, volume: VolumeRef) -> str | None:
        """None when this opener can open the volume, else the reason it cannot (one line)."""

    def open(self, volume: VolumeRef, writable: bool) -> FileAccess:
        """Open the volume; the caller closes the returned access (it is a context manager too)."""
