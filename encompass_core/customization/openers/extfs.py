"""ext2/3/4 filesystems inside raw images, reached without mounting through ``debugfs``.

The filesystem may fill the whole image or one of its partitions (found by
:mod:`.partitions`, opened with unix_io's ``image?offset=N``). One debugfs process serves the
whole time the volume is open (:class:`~.debugfs.DebugfsSession`; ``-w`` when writable).
Paths are resolved by :mod:`.resolve` with the same confinement rule as directory trees, from
directory listings (``ls -p <inode>``) and symlink targets read here, component by component;
debugfs only ever gets inode numbers and single names. What the session learnt (listings,
symlink targets, file contents) is kept until it changes: a change refreshes the listing of
its directory in the same request, and forgets the inode it removed.

A write removes the old file, writes the new one, sets its mode and owner (``sif``), then
lists the directory and reads the file back, in one request: debugfs reports failures on
stderr with exit status 0, so only the read-back tells that a write happened. The
filesystem is marked "not clean" on disk while a writable session runs, and repaired first
when a killed writer left it so (:mod:`.extstate`). When the
volume is closed, debugfs writes the changes out and exits; a second, read-only debugfs then
checks every change from the image itself, so :meth:`ExtFsAccess.close` fails when one did
not reach it. A replaced file keeps its mode and owner unless new ones are given; a new file
gets mode 0644 and its directory's owner. Replacing a file gives it a new inode (like an
atomic rename).
"""

from __future__ import annotations

import os
import stat as stat_module

import attrs

from encompass_core import rundir
from encompass_core.customization.access import FileAccess, FileKind, VolumeRef
from encompass_core.customization.openers.base import ResolvingAccess, describe_volume, seconds
from encompass_core.customization.openers.debugfs import (
    DEFAULT_TIMEOUT,
    DebugfsSession,
    Listing,
    debugfs_path,
    parse_listing,
    quote,
    quote_source,
)
from encompass_core.customization.openers.extstate import ext_superblock
from encompass_core.customization.openers.partitions import find_partition
from encompass_core.customization.openers.resolve import Entry, Resolved
from encompass_core.errors import Conflict, DriverError, InvalidInput, NotFound
from encompass_core.settings import Setting

ROOT_INODE = 2
_INCOMPAT_RECOVER = 0x4  # the journal holds transactions not yet written to the filesystem
_FAST_LINK_MARKER = b'Fast link dest: "'
_FAST_LINK_LIMIT = 60  # shorter targets live in the inode itself


# Contents read or written up to this size are kept for the session (a file is often read
# again: a regexp item reads what another item wrote).
_CONTENT_CACHE_LIMIT = 1 << 20


class _ExtNamespace:
    """Directory handles are inode numbers; listings, symlink targets and contents are cached
    (see the module docstring)."""

    def __init__(self, session: DebugfsSession, label: str) -> None:
        self.session = session
        self.label = label
        self.listings: dict[int, Listing] = {}
        self.targets: dict[int, str] = {}
        self.contents: dict[int, bytes] = {}

    def fail(self, what: str, errors: list[str]) -> DriverError:
        return DriverError(
            f"debugfs could not {what} in {self.label}: {'; '.join(errors)}; "
            "check the filesystem with e2fsck -fn"
        )

    def remember(self, output: bytes) -> Listing | None:
        """Keep a listing, by the inode it shows for its own ``.``: always the right key."""
        listing = parse_listing(output)
        if listing is not None:
            self.listings[listing.itself.inode] = listing
        return listing

    def remember_content(self, inode: int, content: bytes) -> None:
        if len(content) <= _CONTENT_CACHE_LIMIT:
            self.contents[inode] = content

    def forget(self, inode: int) -> None:
        """Forget what was read of an inode that was removed (its number may come back)."""
        self.contents.pop(inode, None)
        self.targets.pop(inode, None)

    def forget_all(self) -> None:
        """After a failed change: nothing learnt may still be true."""
        self.listings.clear()
        self.targets.clear()
        self.contents.clear()

    def listing(self, directory: int) -> Listing:
        cached = self.listings.get(directory)
        if cached is not None:
            return cached
        result = self.session.batch([f"ls -p <{directory}>"])
        listing = self.remember(result.outputs[0])
        if listing is None:
            raise self.fail(f"list directory inode {directory}", result.errors or ["no output"])
        return listing

    def root(self) -> int:
        return ROOT_INODE

    def lookup(self, directory: int, name: str) -> Entry | None:
        return self.listing(directory).entries.get(name)

    def readlink(self, directory: int, name: str, entry: Entry) -> str:
        target = self.targets.get(entry.inode)
        if target is None:
            target = self._read_link(name, entry)
            self.targets[entry.inode] = target
        return target

    def _read_link(self, name: str, entry: Entry) -> str:
        if entry.size < _FAST_LINK_LIMIT:
            output = self.session.batch([f"stat <{entry.inode}>"]).outputs[0]
            start = output.find(_FAST_LINK_MARKER)
            if start >= 0:
                start += len(_FAST_LINK_MARKER)
                return os.fsdecode(output[start : start + entry.size])
        result = self.session.batch([f"cat <{entry.inode}>"])
        if len(result.outputs[0]) != entry.size:
            raise self.fail(f"read the symlink {name!r}", result.errors or ["short read"])
        return os.fsdecode(result.outputs[0])

    def enter(self, directory: int, name: str, entry: Entry) -> int:
        return entry.inode

    def release(self, handle: int) -> None:
        pass


@attrs.frozen
class _Change:
    """What a path must look like in the image once the session ends (kind None: absent)."""

    path: str
    kind: FileKind | None
    owner: tuple[int, int, int] = (0, 0, 0)  # permission bits, uid, gid
    data: bytes | None = None


def _problem(entry: Entry | None, change: _Change, readback: bytes) -> str | None:
    """What differs between a listed entry (and the content read back) and a change."""
    if change.kind is None:
        return None if entry is None else "it is still there"
    if entry is None or entry.kind != change.kind:
        return f"the {'directory' if change.kind == 'dir' else change.kind} is not there"
    if (stat_module.S_IMODE(entry.mode), entry.uid, entry.gid) != change.owner:
        return f"it has mode {entry.mode:#o} and owner {entry.uid}:{entry.gid}"
    if change.data is not None and readback != change.data:
        return "its content differs"
    return None


class ExtFsAccess(ResolvingAccess):
    """The files of an ext2/3/4 filesystem in a raw image (see the module docstring)."""

    def __init__(
        self, volume: VolumeRef, writable: bool, image_path: str | None = None, offset: int = 0,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        super().__init__(volume, writable)
        image_path = volume.path if image_path is None else image_path
        superblock = ext_superblock(image_path, offset)
        if superblock is None:
            raise InvalidInput(f"{self.label} holds no ext2/3/4 filesystem")
        if writable and superblock[0] & _INCOMPAT_RECOVER:
            raise Conflict(
                f"cannot write into {self.label}: its ext journal needs recovery (the guest "
                "did not shut down cleanly); boot and shut down the guest, or run e2fsck -fy"
            )
        self._image = (image_path, offset)
        self._timeout = timeout
        self._session = DebugfsSession(image_path, offset, self.label, writable, timeout)
        self._names = _ExtNamespace(self._session, self.label)
        self._changes: dict[tuple[int, str], _Change] = {}  # by (directory inode, name)

    def _give_up(self) -> None:
        """After a change that failed: nothing learnt may still be true, and :meth:`close`
        must not report the session's failure a second time."""
        self._names.forget_all()
        self._session.failed = True

    def _change(self, what: str, directory: int, commands: list[str]) -> list[bytes]:
        """Run changes in ``directory``; the outputs, after its listing was refreshed from the
        last command (``ls -p``) of the same request."""
        try:
            result = self._session.batch([f"cd <{directory}>", *commands, f"ls -p <{directory}>"])
        except DriverError:
            self._give_up()
            raise
        if result.errors or self._names.remember(result.outputs[-1]) is None:
            self._give_up()
            raise self._names.fail(what, result.errors or ["no listing after the change"])
        return result.outputs

    def _read_file(self, path: str, where: Resolved, entry: Entry) -> bytes:
        cached = self._names.contents.get(entry.inode)
        if cached is not None:
            return cached
        result = self._session.batch([f"cat <{entry.inode}>"])
        content = result.outputs[0]
        if len(content) != entry.size:
            raise DriverError(
                f"debugfs read {len(content)} of the {entry.size} bytes of {path} in "
                f"{self.label}: {'; '.join(result.errors)}; check the filesystem with e2fsck -fn"
            )
        self._names.remember_content(entry.inode, content)
        return content

    def _directory_entry(self, directory: int) -> Entry:
        return self._names.listing(directory).itself

    def _write_file(self, path: str, where: Resolved, data: bytes, mode: int, uid: int, gid: int) -> None:
        name, directory, old = where.name, where.directory, where.entry
        quoted = quote(name, self.label)
        # The content may be a secret: it reaches debugfs through a private memory file, never
        # a file on this server's disks (see rundir.private_file).
        with rundir.private_file(data) as (source, _):
            commands = [f"rm {quoted}"] if old is not None else []
            commands += [
                f"write {quote_source(source)} {quoted}",
                f"sif {quoted} mode 0{stat_module.S_IFREG | mode:o}",
                f"sif {quoted} uid {uid}",
                f"sif {quoted} gid {gid}",
                f"cat {quoted}",
            ]
            outputs = self._change(f"write {path}", directory, commands)
        change = _Change(path, "file", (mode, uid, gid), data)
        entry = self._names.listings[directory].entries.get(name)
        problem = _problem(entry, change, outputs[-2])
        if problem is not None:
            self._give_up()
            raise DriverError(
                f"writing {path} into {self.label} did not take effect: {problem}; the filesystem "
                "may be full or damaged: check it with e2fsck -fn"
            )
        if old is not None:
            self._names.forget(old.inode)
        self._names.remember_content(entry.inode, data)
        self._changes[(directory, name)] = change

    def _list(self, path: str, where: Resolved) -> list[str]:
        directory = where.directory if where.name is None else where.entry.inode
        return list(self._names.listing(directory).entries)

    def _make_directory(self, path: str, where: Resolved, mode: int, parent: Entry) -> None:
        name, directory = where.name, where.directory
        quoted = quote(name, self.label)
        self._change(
            f"create directory {path}",
            directory,
            [
                f"mkdir {quoted}",
                f"sif {quoted} mode 0{stat_module.S_IFDIR | mode:o}",
                f"sif {quoted} uid {parent.uid}",
                f"sif {quoted} gid {parent.gid}",
            ],
        )
        change = _Change(path, "dir", (mode, parent.uid, parent.gid))
        if _problem(self._names.listings[directory].entries.get(name), change, b"") is not None:
            self._give_up()
            raise DriverError(
                f"creating directory {path} in {self.label} did not take effect; the "
                "filesystem may be full or damaged: check it with e2fsck -fn"
            )
        self._changes[(directory, name)] = change

    def _remove_entry(self, path: str, where: Resolved) -> None:
        name, directory = where.name, where.directory
        self._change(f"remove {path}", directory, [f"rm {quote(name, self.label)}"])
        if name in self._names.listings[directory].entries:
            self._give_up()
            raise DriverError(f"removing {path} from {self.label} did not take effect")
        self._names.forget(where.entry.inode)
        self._changes[(directory, name)] = _Change(path, None)

    def _make_symlink(self, path: str, where: Resolved, target: str, parent: Entry) -> None:
        name, directory = where.name, where.directory
        quoted = quote(name, self.label)
        self._change(
            f"create symlink {path}",
            directory,
            [
                f"symlink {quoted} {quote_source(target)}",
                f"sif {quoted} uid {parent.uid}",
                f"sif {quoted} gid {parent.gid}",
            ],
        )
        change = _Change(path, "symlink", (0o777, parent.uid, parent.gid))
        entry = self._names.listings[directory].entries.get(name)
        problem = _problem(entry, change, b"")
        if problem is None and entry.size != len(os.fsencode(target)):
            problem = "its target differs"
        if problem is not None:
            self._give_up()
            raise DriverError(
                f"creating symlink {path} in {self.label} did not take effect: {problem}; the "
                "filesystem may be full or damaged: check it with e2fsck -fn"
            )
        self._changes[(directory, name)] = change

    def _remove_directory(self, path: str, where: Resolved) -> None:
        name, directory, entry = where.name, where.directory, where.entry
        if self._names.listing(entry.inode).entries:
            raise self._not_empty(path)
        self._change(f"remove directory {path}", directory, [f"rmdir {quote(name, self.label)}"])
        if name in self._names.listings[directory].entries:
            self._give_up()
            raise DriverError(f"removing directory {path} from {self.label} did not take effect")
        self._names.listings.pop(entry.inode, None)
        self._names.forget(entry.inode)
        self._changes[(directory, name)] = _Change(path, None)

    def _check_changes_reached_the_image(self) -> None:
        """List every changed directory and read every written file back with a new, read-only
        debugfs: the changes are in the image, not only in the ended session's memory."""
        if not self._changes:
            return
        directories = sorted({directory for directory, _ in self._changes})
        files = [key for key, change in self._changes.items() if change.kind == "file"]
        commands = [f"ls -p <{directory}>" for directory in directories]
        for directory, name in files:
            commands += [f"cd <{directory}>", f"cat {quote(name, self.label)}"]
        checker = DebugfsSession(*self._image, self.label, writable=False, timeout=self._timeout)
        try:
            result = checker.batch(commands)
        finally:
            checker.close()
        listings = dict(zip(directories, map(parse_listing, result.outputs), strict=False))
        readbacks = dict(zip(files, result.outputs[len(directories) + 1 :: 2], strict=True))
        for key, change in self._changes.items():
            listing = listings[key[0]]
            entry = listing.entries.get(key[1]) if listing is not None else None
            problem = _problem(entry, change, readbacks.get(key, b""))
            if problem is not None:
                raise DriverError(
                    f"changing {change.path} in {self.label} did not reach the image: {problem} "
                    f"({'; '.join(result.errors) or 'debugfs said nothing'}); the filesystem may "
                    "be full or damaged: check it with e2fsck -fn"
                )

    def close(self) -> None:
        """End debugfs (writing the changes out), check them in the image, forget the helper
        files. Idempotent; fails when a change did not reach the image."""
        if self.closed:
            return
        try:
            errors = self._session.finish()
            if self._session.failed:
                return  # the caller was told already; do not hide that error behind this one
            if errors:
                raise self._names.fail("write the changes out", errors)
            self._check_changes_reached_the_image()
        finally:
            self._session.close()
            super().close()


def partition_offset(volume: VolumeRef, image_path: str) -> int:
    """The byte offset of the volume's partition in ``image_path`` (0 for the whole image)."""
    if volume.partition is None:
        return 0
    return find_partition(image_path, volume.partition).offset


class ExtFsOpener:
    """Opens ext2/3/4 filesystems in raw images (whole or one partition) without mounting."""

    name = "extfs"
    settings = (Setting("timeout", float, DEFAULT_TIMEOUT, "seconds a debugfs request may take",
                        minimum=1),)

    def __init__(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.timeout = seconds(timeout)  # seconds a debugfs request may take ([openers.extfs] timeout)

    def can_open(self, volume: VolumeRef) -> str | None:
        """None for a raw image holding an ext filesystem where asked, else why not."""
        if volume.format != "raw":
            return f"extfs reads raw images, not {volume.format} volumes"
        if debugfs_path() is None:
            return "debugfs is not installed (Debian package e2fsprogs)"
        if not os.path.isfile(volume.path):
            return f"'{volume.path}' is not a file"
        try:
            offset = partition_offset(volume, volume.path)
        except (NotFound, InvalidInput) as error:
            return str(error)
        if ext_superblock(volume.path, offset) is None:
            return f"{describe_volume(volume)} holds no ext2/3/4 filesystem"
        return None

    def open(self, volume: VolumeRef, writable: bool) -> FileAccess:
        """Open the filesystem; close the result (or use it in a ``with`` block)."""
        offset = partition_offset(volume, volume.path)
        return ExtFsAccess(volume, writable, offset=offset, timeout=self.timeout)
