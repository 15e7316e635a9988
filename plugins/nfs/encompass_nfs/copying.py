"""Copies into, out of and within an export, keeping holes.

On a mounted export a copy within it is the kernel's: a reflink where the server's filesystem
shares extents, else ``copy_file_range`` (which an NFSv4.2 mount turns into a server-side
COPY). Through libnfs (NFSv3 has no copy operation) the bytes pass through this host: regions
that read as zeros are not written, so the copy stays sparse.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
from collections.abc import Callable
from pathlib import Path

from encompass_core import rundir
from encompass_core.contracts import Progress
from encompass_core.drivers import streaming
from encompass_core.drivers.sparsecopy import copy_sparse, data_segments
from encompass_core.errors import DriverError

from .files import Entry, ExportFiles, MountedExport, Reader, entry_of, error_for

CHUNK = 1 << 20
_ZERO_BLOCK = bytes(4 << 10)


def _zeros(data: bytearray, length: int) -> bool:
    """Whether ``data[:length]`` is all zeros, looked at in place."""
    if length <= len(_ZERO_BLOCK):  # a memory compare: ten times a count's speed
        return data.startswith(_ZERO_BLOCK[:length])
    return data.count(0, 0, length) == length


def upload_file(source: Path, files: ExportFiles, rel: str, mode: int = 0o644,
                progress: Progress | None = None) -> None:
    """Copy a file of this host to a new file ``rel`` of the export: its data regions only, and
    of those the blocks that are not zeros (the new file keeps the holes), read ahead in a
    thread while libnfs writes (:func:`encompass_core.drivers.streaming.pump`)."""
    if isinstance(files, MountedExport):
        copy_sparse(str(source), str(files.local(rel)), progress)
        os.chmod(files.local(rel), mode)
        return
    fd = os.open(source, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        writer = files.create(rel, mode)
        try:
            # The buffers the pump fills are writable: libnfs writes them as they are.
            read_into = streaming.read_whole(lambda offset, view: streaming.pread_into(fd, offset, view),
                                             str(source), size)
            streaming.pump(read_into, data_segments(fd, size),
                           writer.write_at, size, progress, readers=1, chunk=writer.chunk)
            writer.truncate(size)
        finally:
            writer.close()
    finally:
        os.close(fd)


def copy_file(files: ExportFiles, source: str, target: str, mode: int = 0o644,
              progress: Progress | None = None) -> None:
    """Copy ``source`` to a new file ``target``, both in the export (zero blocks not written)."""
    if isinstance(files, MountedExport):
        copy_sparse(str(files.local(source)), str(files.local(target)), progress)
        os.chmod(files.local(target), mode)
        return
    reader: Reader = files.open_read(source)
    try:
        # One context, one lock: reads and writes take turns, one read ahead.
        upload_reader(reader.read_into, reader.size, f"{files.label}/{source}", files, target, mode,
                      progress)
    finally:
        reader.close()


def upload_reader(read_into: Callable[[int, memoryview], int], size: int, label: str,
                  files: ExportFiles, rel: str, mode: int = 0o644, progress: Progress | None = None,
                  readers: int = 1) -> None:
    """Copy ``size`` bytes read by ``read_into(offset, buffer)`` (a file of the export, or another
    pool's :meth:`~encompass_core.contracts.StorageDriver.open_reader`) to a new file ``rel`` of
    the export: zero blocks not written, ``readers`` reads ahead in threads."""
    writer = files.create(rel, mode)
    try:
        read_whole = streaming.read_whole(read_into, f"pool '{files.pool}': {label}", size)
        streaming.pump(read_whole, iter([(0, size)]), writer.write_at, size, progress, readers=readers,
                       chunk=writer.chunk)
        writer.truncate(size)
    finally:
        writer.close()


def download_file(files: ExportFiles, source: str, target: Path) -> None:
    """Copy a file of the export to a new file of this host (holes kept)."""
    reader = files.open_read(source)
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            offset, buffer = 0, bytearray(CHUNK)  # one buffer for the whole file
            with memoryview(buffer) as whole:
                while offset < reader.size:
                    got = reader.read_into(offset, whole[:min(CHUNK, reader.size - offset)])
                    if not got:
                        break
                    if not _zeros(buffer, got):
                        os.pwrite(fd, whole[:got], offset)
                    offset += got
            os.ftruncate(fd, reader.size)
        finally:
            os.close(fd)
    finally:
        reader.close()


# -- trees ----------------------------------------------------------------------------------------
def upload_tree(source: Path, files: ExportFiles, rel: str, timeout: float, setting: str) -> None:
    """Copy a directory tree of this host to a new folder ``rel`` of the export, with modes,
    owners, links and device nodes (hard links become separate files)."""
    if isinstance(files, MountedExport):
        _cp_tree(str(source), str(files.local(rel)), timeout, setting)
        return
    def lstat_of(sub: str) -> Entry:
        info = os.lstat(os.path.join(source, sub) if sub else source)
        return entry_of(info.st_mode, info.st_size, info.st_uid, info.st_gid, info.st_rdev)

    _copy_tree_with(lstat_of,
                    lambda sub: sorted(os.listdir(os.path.join(source, sub) if sub else source)),
                    lambda sub: os.readlink(os.path.join(source, sub)),
                    lambda sub, target: upload_file(Path(source, sub), files, target),
                    files, rel)


def copy_tree(files: ExportFiles, source: str, target: str, timeout: float, setting: str) -> None:
    """Copy the folder ``source`` of the export to a new folder ``target`` of it."""
    if isinstance(files, MountedExport):
        _cp_tree(str(files.local(source)), str(files.local(target)), timeout, setting)
        return

    def lstat_of(sub: str) -> Entry:
        entry = files.lstat(_join(source, sub))
        if entry is None:
            raise DriverError(f"pool '{files.pool}': {files.label}/{_join(source, sub)} vanished "
                              "while it was copied")
        return entry

    _copy_tree_with(lstat_of, lambda sub: files.listdir(_join(source, sub)),
                    lambda sub: files.readlink(_join(source, sub)),
                    lambda sub, made: copy_file(files, _join(source, sub), made), files, target)


def download_tree(files: ExportFiles, source: str, target: Path) -> None:
    """Copy the folder ``source`` of the export to a new folder of this host, as root would."""
    top = files.lstat(source)
    assert top is not None
    os.mkdir(target, 0o700)
    for name in files.listdir(source):
        rel, local = _join(source, name), target / name
        entry = files.lstat(rel)
        if entry is None:
            continue
        if entry.kind == "dir":
            download_tree(files, rel, local)
        elif entry.kind == "symlink":
            os.symlink(files.readlink(rel), local)
        elif entry.kind == "file":
            download_file(files, rel, local)
        else:
            os.mknod(local, entry.mode, entry.rdev)
        _own(local, entry.uid, entry.gid, entry.mode, entry.kind == "symlink")
    _own(target, top.uid, top.gid, top.mode, False)


def _own(path: Path, uid: int, gid: int, mode: int, link: bool) -> None:
    with contextlib.suppress(PermissionError):
        os.lchown(path, uid, gid)
    if not link:
        os.chmod(path, stat.S_IMODE(mode))


def _join(top: str, sub: str) -> str:
    """``top/sub``, relative: either may be empty (never a leading slash)."""
    return f"{top}/{sub}" if top and sub else top or sub


def _copy_tree_with(lstat_of, listdir_of, readlink_of, copy_file_of, files: ExportFiles,
                    rel: str, sub: str = "") -> None:
    """Make ``rel`` (+ ``sub``) in the export as the source describes it, depth first."""
    here = lstat_of(sub)
    target = _join(rel, sub)
    files.mkdir(target, 0o700)  # opened up last, once its content is in
    for name in listdir_of(sub):
        child = _join(sub, name)
        made = _join(rel, child)
        info = lstat_of(child)
        if info.kind == "dir":
            _copy_tree_with(lstat_of, listdir_of, readlink_of, copy_file_of, files, rel, child)
            continue
        if info.kind == "symlink":
            files.symlink(readlink_of(child), made)
        elif info.kind == "file":
            copy_file_of(child, made)
            files.chmod(made, stat.S_IMODE(info.mode))
        else:
            files.mknod(made, info.mode, info.rdev)
        files.chown(made, info.uid, info.gid)
    files.chown(target, here.uid, here.gid)
    files.chmod(target, stat.S_IMODE(here.mode))


def _cp_tree(source: str, target: str, timeout: float, setting: str) -> None:
    # cp -a keeps owners, modes, links, xattrs and holes; reflinks where it can.
    done = rundir.run(["cp", "-a", "--reflink=auto", "--", source, target], f"cp of {source}",
                      timeout, setting)
    if done.returncode != 0:
        raise DriverError(f"cannot copy the tree {source}: {done.stderr.decode().strip()}")


def remove_tree(files: ExportFiles, rel: str) -> None:
    """Remove ``rel`` and everything under it (a file or link alone too)."""
    if isinstance(files, MountedExport):
        path = files.local(rel)
        try:
            if path.is_dir() and not path.is_symlink():
                for folder in [path, *(p for p in path.rglob("*") if p.is_dir() and not p.is_symlink())]:
                    with contextlib.suppress(OSError):
                        folder.chmod(folder.stat().st_mode | stat.S_IWUSR | stat.S_IXUSR)
                shutil.rmtree(path)
            else:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        except OSError as exc:  # the mount refused (an immutable file, a read-only mount)
            raise error_for(files, exc.errno or errno.EIO, "remove", rel) from exc
        return
    entry = files.lstat(rel)
    if entry is None:
        return
    if entry.kind != "dir":
        files.unlink(rel)
        return
    if files.folder_modes:
        files.chmod(rel, stat.S_IMODE(entry.mode) | stat.S_IWUSR | stat.S_IXUSR)
    for name in files.listdir(rel):
        remove_tree(files, _join(rel, name))
    files.rmdir(rel)
