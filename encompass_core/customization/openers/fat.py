"""FAT12/16/32 filesystems (EFI system partitions, old Windows disks) through mtools, unmounted.

mtools reads the image itself (``-i IMAGE@@OFFSET``): no mount, no root. Paths are resolved by
:mod:`.resolve` over directory listings (``mdir -a``), regardless of case as Windows does, so
``/EFI/boot`` finds ``/EFI/BOOT``; mtools only ever gets a path whose every component was
found that way (or, for the last one, is being created). FAT has no symbolic links and no
owners: every entry is owned by root, files read as mode 0755, and modes and owners given
for a write are ignored. A name Windows could not use (``*?<>|":\\``, control characters) is
refused before anything is written. Partitions and qcow2 images are reached through
:mod:`.region`.

Each change is checked by listing its directory again: mtools' exit status alone is not
trusted to say the file is there with its size.
"""

from __future__ import annotations

import os
import re
import shutil
import stat as stat_module

from encompass_core import rundir
from encompass_core.customization.access import FileAccess, VolumeRef
from encompass_core.customization.openers.base import ResolvingAccess, seconds
from encompass_core.customization.openers.region import Region, is_fat, open_region, raw_problem
from encompass_core.customization.openers.resolve import Entry, Resolved, spell_in
from encompass_core.errors import DriverError, InvalidInput
from encompass_core.settings import Setting

DEFAULT_TIMEOUT = 120.0  # seconds one mtools command may take
# "HELLO    TXT         4 2026-12-01  16:37  Hello.txt": 8.3 name, size or <DIR>, date, time,
# then the long name when there is one.
_LINE = re.compile(r"^(?P<base>.{8}) (?P<ext>.{3}) +(?P<size><DIR>|\d+) +\S+ +\S+(?: (?: (?P<long>.+))?)?$")
_FORBIDDEN = re.compile(r'[\x00-\x1f*?<>|":\\]')
_FILE_MODE = stat_module.S_IFREG | 0o755
_DIR_MODE = stat_module.S_IFDIR | 0o755


def mtools_path() -> str | None:
    """mcopy (Debian package mtools), or None: the other mtools commands come with it."""
    return shutil.which("mcopy")


def parse_mdir(output: str) -> dict[str, Entry]:
    """The entries of one ``mdir -a`` listing, by name (``.`` and ``..`` left out)."""
    entries = {}
    for line in output.splitlines():
        match = _LINE.match(line)
        if match is None:
            continue
        name = match["long"]
        if not name:
            base, ext = match["base"].strip(), match["ext"].strip()
            name = f"{base}.{ext}" if ext else base
        if name in (".", ".."):
            continue
        is_dir = match["size"] == "<DIR>"
        entries[name] = Entry(kind="dir" if is_dir else "file", mode=_DIR_MODE if is_dir else _FILE_MODE,
                              uid=0, gid=0, size=0 if is_dir else int(match["size"]))
    return entries


class _Mtools:
    """Runs mtools commands on one filesystem, with a clean environment (no user's mtoolsrc)."""

    def __init__(self, region: Region, label: str, timeout: float) -> None:
        self.image = f"{region.path}@@{region.offset}" if region.offset else region.path
        self.label = label
        self.timeout = timeout
        self.env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C",
                    "MTOOLSRC": "/dev/null", "MTOOLS_SKIP_CHECK": "1"}

    def run(self, command: str, *args: str) -> tuple[int, bytes, str]:
        done = rundir.run([command, "-i", self.image, *args], command, self.timeout,
                          "[openers.fat] timeout", env=self.env)
        return done.returncode, done.stdout, os.fsdecode(done.stderr).strip()


def _target(directory: str, name: str) -> str:
    return "::" + directory.rstrip("/") + "/" + name


class _FatNamespace:
    """Directory handles are canonical paths (``/``, ``/Windows/Panther``); listings cached."""

    def __init__(self, tools: _Mtools) -> None:
        self.tools = tools
        self.listings: dict[str, dict[str, Entry]] = {}

    def listing(self, directory: str, refresh: bool = False) -> dict[str, Entry]:
        if refresh or directory not in self.listings:
            code, out, err = self.tools.run("mdir", "-a", "::" + directory)
            if code != 0:
                raise DriverError(f"mdir could not list {directory} in {self.tools.label}: {err}; "
                                  "check the filesystem with fsck.vfat -n")
            self.listings[directory] = parse_mdir(os.fsdecode(out))
        return self.listings[directory]

    def root(self) -> str:
        return "/"

    def spell(self, directory: str, name: str) -> str:
        return name if name in (".", "..") else spell_in(self.listing(directory), name)

    def lookup(self, directory: str, name: str) -> Entry | None:
        return self.listing(directory).get(name)

    def readlink(self, directory: str, name: str, entry: Entry) -> str:
        raise DriverError(f"{name!r} in {self.tools.label} is a symlink, which FAT cannot hold")

    def enter(self, directory: str, name: str, entry: Entry) -> str:
        return directory.rstrip("/") + "/" + name

    def release(self, handle: str) -> None:
        pass


class FatAccess(ResolvingAccess):
    """The files of a FAT filesystem (see the module docstring)."""

    def __init__(self, volume: VolumeRef, writable: bool, region: Region, timeout: float) -> None:
        super().__init__(volume, writable)
        self.region = region
        self._tools = _Mtools(region, self.label, timeout)
        self._names = _FatNamespace(self._tools)

    def _check_name(self, path: str, name: str) -> None:
        if _FORBIDDEN.search(name) or name.endswith((" ", ".")):
            raise InvalidInput(f"cannot write {path} in {self.label}: {name!r} is not a name Windows "
                               "can use (no * ? < > | \" : \\ or control characters, no trailing dot "
                               "or space)")

    def _changed(self, what: str, where: Resolved, expect: Entry | None, err: str) -> None:
        """Check a change by listing its directory again (mtools' status is not enough)."""
        entry = self._names.listing(where.directory, refresh=True).get(where.name)
        ok = entry is None if expect is None else (
            entry is not None and entry.kind == expect.kind and entry.size == expect.size)
        if not ok:
            raise DriverError(f"could not {what} in {self.label}: {err or 'the change is not there'}; "
                              "the filesystem may be full or damaged: check it with fsck.vfat -n")

    def _read_file(self, path: str, where: Resolved, entry: Entry) -> bytes:
        code, out, err = self._tools.run("mcopy", "-n", _target(where.directory, where.name), "-")
        if code != 0 or len(out) != entry.size:
            raise DriverError(f"mcopy could not read {path} in {self.label}: {err or 'short read'}; "
                              "check the filesystem with fsck.vfat -n")
        return out

    def _directory_entry(self, directory: str) -> Entry:
        return Entry(kind="dir", mode=_DIR_MODE, uid=0, gid=0, size=0)

    def _write_file(self, path: str, where: Resolved, data: bytes, mode: int, uid: int, gid: int) -> None:
        self._check_name(path, where.name)
        # The content may be a secret: mcopy reads it from a private memory file.
        with rundir.private_file(data) as (source, _):
            target = _target(where.directory, where.name)
            _, _, err = self._tools.run("mcopy", "-o", "-D", "o", source, target)
        self._changed(f"write {path}", where, Entry("file", _FILE_MODE, 0, 0, len(data)), err)

    def _list(self, path: str, where: Resolved) -> list[str]:
        directory = where.directory if where.name is None else self._names.enter(where.directory, where.name,
                                                                                  where.entry)
        return list(self._names.listing(directory))

    def _make_directory(self, path: str, where: Resolved, mode: int, parent: Entry) -> None:
        self._check_name(path, where.name)
        _, _, err = self._tools.run("mmd", _target(where.directory, where.name))
        self._changed(f"create directory {path}", where, Entry("dir", _DIR_MODE, 0, 0, 0), err)

    def _remove_entry(self, path: str, where: Resolved) -> None:
        _, _, err = self._tools.run("mdel", _target(where.directory, where.name))
        self._changed(f"remove {path}", where, None, err)

    def close(self) -> None:
        """Stop the export, if any (mtools wrote each change as it ran). Idempotent."""
        if self.closed:
            return
        try:
            self.region.close()
        finally:
            super().close()


class FatOpener:
    """Opens FAT12/16/32 filesystems in raw or qcow2 images (whole or one partition) with mtools."""

    name = "fat"
    settings = (Setting("timeout", float, DEFAULT_TIMEOUT, "seconds one mtools command may take",
                        minimum=1),)

    def __init__(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.timeout = seconds(timeout)

    def can_open(self, volume: VolumeRef) -> str | None:
        """None when mtools is here and (for a raw image) the place holds FAT, else why not."""
        if volume.format not in ("raw", "qcow2"):
            return f"fat reads raw and qcow2 images, not {volume.format} volumes"
        if mtools_path() is None:
            return "mtools is not installed (Debian package mtools)"
        if not os.path.isfile(volume.path):
            return f"'{volume.path}' is not a file"
        return raw_problem(volume, is_fat, "FAT")

    def open(self, volume: VolumeRef, writable: bool) -> FileAccess:
        """Reach the filesystem; close the result (or use it in a ``with`` block)."""
        return open_region(volume, writable, self.timeout, False, is_fat, "FAT",
                           lambda region: FatAccess(volume, writable, region, self.timeout))
