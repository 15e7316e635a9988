"""ext2/3/4 filesystems inside raw images, reached without mounting through ``debugfs``.

The filesystem may fill the whole image or one of its partitions (found by
:mod:`.partitions`, opened with unix_io's ``image?offset=N``). Paths are resolved by
:mod:`.resolve` with the same confinement rule as directory trees, from directory listings
(``ls -p <inode>``) and symlink targets read here, component by component; debugfs only ever
gets inode numbers and single names. Listings of the directories a path names are fetched in
one batch up front, so a typical request costs two or three debugfs runs.

A write removes the old file, writes the new one, sets its mode and owner (``sif``) in one
``debugfs -w`` batch, then reads the directory entry and the content back: debugfs reports
failures on stderr with exit status 0, so only the read-back tells that a write happened.
A replaced file keeps its mode and owner unless new ones are given; a new file gets mode
0644 and its directory's owner. Replacing a file gives it a new inode (like an atomic rename).
"""

from __future__ import annotations

import os
import stat as stat_module
import struct
import tempfile

from encompass_core.customization.access import FileAccess, FileStat, VolumeRef
from encompass_core.customization.openers.base import (
    DEFAULT_FILE_MODE,
    FileAccessBase,
    check_mode,
    describe_volume,
)
from encompass_core.customization.openers.debugfs import (
    Debugfs,
    debugfs_path,
    parse_listing,
    quote,
)
from encompass_core.customization.openers.partitions import find_partition
from encompass_core.customization.openers.resolve import Entry, Resolved, check_path, resolve
from encompass_core.errors import Conflict, DriverError, InvalidInput, NotFound

ROOT_INODE = 2
_EXT_MAGIC = 0xEF53
_INCOMPAT_RECOVER = 0x4  # the journal holds transactions not yet written to the filesystem
_FAST_LINK_MARKER = b'Fast link dest: "'
_FAST_LINK_LIMIT = 60  # shorter targets live in the inode itself


def ext_superblock(image_path: str, offset: int = 0) -> tuple[int, int] | None:
    """``(incompat features, state)`` of the ext superblock at ``offset``, None if none is."""
    try:
        with open(image_path, "rb") as stream:
            stream.seek(offset + 1024)
            block = stream.read(1024)
    except OSError:
        return None
    if len(block) < 1024 or struct.unpack_from("<H", block, 56)[0] != _EXT_MAGIC:
        return None
    (incompat,) = struct.unpack_from("<I", block, 96)
    (state,) = struct.unpack_from("<H", block, 58)
    return incompat, state


class _ExtNamespace:
    """Directory handles are inode numbers; listings are cached until the next write."""

    def __init__(self, debugfs: Debugfs, label: str) -> None:
        self.debugfs = debugfs
        self.label = label
        self.listings: dict[int, dict[str, Entry]] = {}

    def _fail(self, what: str, errors: list[str]) -> DriverError:
        return DriverError(
            f"debugfs could not {what} in {self.label}: {'; '.join(errors)}; "
            "check the filesystem with e2fsck -fn"
        )

    def prefetch(self, path: str) -> None:
        """List the directories ``path`` names lexically, in one debugfs run."""
        parts = check_path(path, self.label)
        prefixes = ["/"]
        for part in parts[:-1]:
            if part == ".." or "\n" in part or "\r" in part:
                break
            prefixes.append(prefixes[-1].rstrip("/") + "/" + part)
        commands = [f"ls -p {quote_path(prefix)}" for prefix in prefixes]
        result = self.debugfs.batch(commands)
        for output in result.outputs:
            self._remember(output)  # keyed by the listing's own '.' inode: always right

    def _remember(self, output: bytes) -> dict[str, Entry] | None:
        entries = parse_listing(output)
        itself = entries.pop(".", None)
        if itself is None:
            return None
        self.listings[itself.inode] = entries
        return entries

    def listing(self, directory: int) -> dict[str, Entry]:
        cached = self.listings.get(directory)
        if cached is not None:
            return cached
        output, errors = self.debugfs.request(f"ls -p <{directory}>")
        entries = self._remember(output)
        if entries is None:
            raise self._fail(f"list directory inode {directory}", errors or ["no output"])
        return entries

    def root(self) -> int:
        return ROOT_INODE

    def lookup(self, directory: int, name: str) -> Entry | None:
        return self.listing(directory).get(name)

    def readlink(self, directory: int, name: str, entry: Entry) -> str:
        if entry.size < _FAST_LINK_LIMIT:
            output, errors = self.debugfs.request(f"stat <{entry.inode}>")
            start = output.find(_FAST_LINK_MARKER)
            if start >= 0:
                start += len(_FAST_LINK_MARKER)
                return os.fsdecode(output[start : start + entry.size])
        output, errors = self.debugfs.request(f"cat <{entry.inode}>")
        if len(output) != entry.size:
            raise self._fail(f"read the symlink {name!r}", errors or ["short read"])
        return os.fsdecode(output)

    def enter(self, directory: int, name: str, entry: Entry) -> int:
        return entry.inode

    def release(self, handle: int) -> None:
        pass


def quote_path(path: str) -> str:
    """A lexical path for a prefetch listing (only ever keyed by the inode it lists)."""
    return '"' + path.replace('"', '""') + '"'


class ExtFsAccess(FileAccessBase):
    """The files of an ext2/3/4 filesystem in a raw image (see the module docstring)."""

    def __init__(
        self, volume: VolumeRef, writable: bool, image_path: str | None = None, offset: int = 0
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
        self._debugfs = Debugfs(image_path, offset, self.label)
        self._names = _ExtNamespace(self._debugfs, self.label)
        self._workdir = tempfile.mkdtemp(prefix="encompass-extfs-")

    def _resolve(self, path: str, follow_final: bool = True):
        self._check_open()
        self._names.prefetch(path)
        return resolve(self._names, path, self.label, follow_final)

    def _missing(self, path: str) -> NotFound:
        return NotFound(f"{path} does not exist in {self.label}; check the path")

    def _run_changes(self, what: str, commands: list[str]) -> None:
        result = self._debugfs.batch(commands, writable=True)
        self._names.listings.clear()
        if result.errors:
            raise DriverError(
                f"debugfs could not {what} in {self.label}: {'; '.join(result.errors)}; "
                "check the filesystem with e2fsck -fn"
            )

    def _entry_after_change(self, directory: int, name: str) -> Entry | None:
        self._names.listings.pop(directory, None)
        return self._names.lookup(directory, name)

    def read(self, path: str) -> bytes:
        """Return the content of a regular file (symlinks followed inside the filesystem)."""
        with self._resolve(path) as where:
            entry = self._require_file(path, where)
            content, errors = self._debugfs.request(f"cat <{entry.inode}>", catastrophic=True)
            if len(content) != entry.size:
                raise DriverError(
                    f"debugfs read {len(content)} of the {entry.size} bytes of {path} in "
                    f"{self.label}: {'; '.join(errors)}; check the filesystem with e2fsck -fn"
                )
            return content

    def _require_file(self, path: str, where: Resolved) -> Entry:
        if where.name is not None and where.entry is None:
            raise self._missing(path)
        if where.entry is None or where.entry.kind != "file":
            kind = "a directory" if where.entry is None else f"a {where.entry.kind}"
            raise InvalidInput(f"{path} in {self.label} is {kind}, not a regular file")
        return where.entry

    def write(
        self,
        path: str,
        data: bytes,
        mode: int | None = None,
        uid: int | None = None,
        gid: int | None = None,
    ) -> None:
        """Create or replace a regular file (through a final symlink, as the guest would)."""
        self._check_writable(path)
        check_mode(mode)
        with self._resolve(path) as where:
            if where.name is None or (where.entry is not None and where.entry.kind != "file"):
                kind = "a directory" if where.entry is None else f"a {where.entry.kind}"
                raise InvalidInput(f"cannot write {path} in {self.label}: it is {kind}, not a regular file")
            name, directory, old = where.name, where.directory, where.entry
        if old is not None:
            mode = stat_module.S_IMODE(old.mode) if mode is None else mode
            uid = old.uid if uid is None else uid
            gid = old.gid if gid is None else gid
        else:
            parent = self._parent_entry(directory)
            mode = DEFAULT_FILE_MODE if mode is None else mode
            uid = parent.uid if uid is None else uid
            gid = parent.gid if gid is None else gid
        source = os.path.join(self._workdir, "content")
        with open(source, "wb") as stream:
            stream.write(data)
        quoted = quote(name, self.label)
        commands = [f"cd <{directory}>"]
        if old is not None:
            commands.append(f"rm {quoted}")
        commands += [
            f"write {source} {quoted}",
            f"sif {quoted} mode 0{stat_module.S_IFREG | mode:o}",
            f"sif {quoted} uid {uid}",
            f"sif {quoted} gid {gid}",
        ]
        self._run_changes(f"write {path}", commands)
        self._verify_written(path, directory, name, data, (mode, uid, gid))

    def _parent_entry(self, directory: int) -> Entry:
        output, errors = self._debugfs.request(f"ls -p <{directory}>")
        entry = parse_listing(output).get(".")
        if entry is None:
            raise DriverError(f"debugfs could not list a directory of {self.label}: {errors}")
        return entry

    def _verify_written(
        self, path: str, directory: int, name: str, data: bytes, owner: tuple[int, int, int]
    ) -> None:
        readback = os.path.join(self._workdir, "readback")
        if os.path.exists(readback):
            os.unlink(readback)
        result = self._debugfs.batch(
            [f"ls -p <{directory}>", f"cd <{directory}>", f"dump {quote(name, self.label)} {readback}"]
        )
        entry = parse_listing(result.outputs[0]).get(name)
        problem = None
        if entry is None or entry.kind != "file":
            problem = "the file is not there"
        elif (stat_module.S_IMODE(entry.mode), entry.uid, entry.gid) != owner:
            problem = f"it has mode {entry.mode:#o} and owner {entry.uid}:{entry.gid}"
        else:
            try:
                with open(readback, "rb") as stream:
                    if stream.read() != data:
                        problem = "its content differs"
            except FileNotFoundError:
                problem = "it cannot be read back"
        if problem is not None:
            raise DriverError(
                f"writing {path} into {self.label} did not take effect: {problem} "
                f"({'; '.join(result.errors) or 'debugfs said nothing'}); the filesystem may "
                "be full or damaged: check it with e2fsck -fn"
            )

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
                entry = self._parent_entry(where.directory)
            elif where.entry is None:
                raise self._missing(path)
            else:
                entry = where.entry
            target = None
            if entry.kind == "symlink":
                target = self._names.readlink(where.directory, where.name, entry)
            return FileStat(
                entry.kind, entry.size, stat_module.S_IMODE(entry.mode), entry.uid, entry.gid, target
            )

    def listdir(self, path: str) -> list[str]:
        """Names in a directory, sorted, without ``.`` and ``..``."""
        with self._resolve(path) as where:
            if where.name is None:
                directory = where.directory
            elif where.entry is None:
                raise self._missing(path)
            elif where.entry.kind != "dir":
                raise InvalidInput(f"{path} in {self.label} is not a directory")
            else:
                directory = where.entry.inode
            return sorted(self._names.listing(directory))

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
            name, directory = where.name, where.directory
        parent = self._parent_entry(directory)
        quoted = quote(name, self.label)
        self._run_changes(
            f"create directory {path}",
            [
                f"cd <{directory}>",
                f"mkdir {quoted}",
                f"sif {quoted} mode 0{stat_module.S_IFDIR | mode:o}",
                f"sif {quoted} uid {parent.uid}",
                f"sif {quoted} gid {parent.gid}",
            ],
        )
        entry = self._entry_after_change(directory, name)
        if entry is None or entry.kind != "dir":
            raise DriverError(
                f"creating directory {path} in {self.label} did not take effect; the "
                "filesystem may be full or damaged: check it with e2fsck -fn"
            )

    def remove(self, path: str) -> None:
        """Remove a file or symlink (not a directory); a final symlink itself is removed."""
        self._check_writable(path)
        with self._resolve(path, follow_final=False) as where:
            if where.name is None or (where.entry is not None and where.entry.kind == "dir"):
                raise InvalidInput(f"cannot remove {path} in {self.label}: it is a directory")
            if where.entry is None:
                raise self._missing(path)
            name, directory = where.name, where.directory
        self._run_changes(f"remove {path}", [f"cd <{directory}>", f"rm {quote(name, self.label)}"])
        if self._entry_after_change(directory, name) is not None:
            raise DriverError(f"removing {path} from {self.label} did not take effect")

    def close(self) -> None:
        """Forget the helper files. Idempotent (debugfs runs hold nothing open)."""
        if not self.closed:
            self._debugfs.close()
            for name in ("content", "readback"):
                path = os.path.join(self._workdir, name)
                if os.path.exists(path):
                    os.unlink(path)
            os.rmdir(self._workdir)
        super().close()


def partition_offset(volume: VolumeRef, image_path: str) -> int:
    """The byte offset of the volume's partition in ``image_path`` (0 for the whole image)."""
    if volume.partition is None:
        return 0
    return find_partition(image_path, volume.partition).offset


class ExtFsOpener:
    """Opens ext2/3/4 filesystems in raw images (whole or one partition) without mounting."""

    name = "extfs"

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
        return ExtFsAccess(volume, writable, offset=partition_offset(volume, volume.path))
