"""Volumes of an export reached through libnfs, made reachable on this host for the openers.

A disk file (raw, or a qcow2 with its chain of backing files) is exported by
qemu-storage-daemon, whose NFS driver (Debian package qemu-block-extra; NFSv3 through the
server's portmapper) reads it on the server, as a raw file through FUSE: any raw opener then
reaches its files, and writes go to the top file only. The backing chain is read from the
qcow2 headers and spelled out node by node: QEMU 7.2 resolves a relative backing name of an
``nfs://`` file wrongly (it mounts ``…/vol0.qcow2/../master`` as an export).

A directory tree is copied to a folder of this host; a writable one is copied back when the
block ends, beside the old tree, which it then replaces.

For the core's copy into another pool a disk file that reads through nothing else is read by
libnfs itself (:func:`read_directly`): the FUSE view answers one read at a time.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import attrs

from encompass_core import rundir
from encompass_core.customization.access import VolumeRef
from encompass_core.errors import DriverError
from encompass_core.lazy import lazy_module

from . import copying
from .client import LibnfsExport
from .files import Reader
from .qcow2 import backing_path, read_header

#: The core's qcow2 opener (qemu-storage-daemon over FUSE) and, through its package, every
#: other opener: imported when a file is exposed, not by every command that loads the pool.
qcow2_opener = lazy_module("encompass_core.customization.openers.qcow2")

MAX_CHAIN = 64  # backing files followed at the most (a loop would be endless)


def chain(files: LibnfsExport, rel: str, fmt: str) -> list[tuple[str, str]]:
    """``(path, format)`` of ``rel`` and of each file it reads through, top first."""
    layers = [(rel, fmt)]
    while fmt == "qcow2":
        header = read_header(files, rel)
        if header is None:
            raise DriverError(f"pool '{files.pool}': {files.label}/{rel} is not a qcow2 file")
        if not header.backing:
            break
        below = backing_path(rel, header.backing)
        if below is None or len(layers) >= MAX_CHAIN:
            raise DriverError(f"pool '{files.pool}': {files.label}/{rel} reads through "
                              f"{header.backing}, which is not a file of this export")
        rel, fmt = below, header.backing_format or "raw"
        layers.append((rel, fmt))
    return layers


def blockdevs(files: LibnfsExport, rel: str, fmt: str, writable: bool) -> list[dict]:
    """QEMU ``--blockdev`` objects for ``rel`` and its chain, the top one named ``disk``."""
    layers = chain(files, rel, fmt)
    nodes: list[dict] = []
    below: str | None = None
    for depth in range(len(layers) - 1, -1, -1):
        path, layer_format = layers[depth]
        read_only = not (writable and depth == 0)
        name = "disk" if depth == 0 else f"layer{depth}"
        nodes.append({"driver": "nfs", "node-name": f"{name}-file", "read-only": read_only,
                      "server": {"type": "inet", "host": files.url.host},
                      "path": f"{files.url.export}/{path}"})
        node = {"driver": layer_format, "node-name": name, "file": f"{name}-file", "read-only": read_only}
        if layer_format == "qcow2" and below is not None:
            node["backing"] = below
        nodes.append(node)
        below = name
    return nodes


@contextlib.contextmanager
def exposed_file(files: LibnfsExport, rel: str, fmt: str, writable: bool) -> Iterator[VolumeRef]:
    """The disk file as a raw file of this host for the block."""
    # QEMU speaks NFSv3 (through the server's portmapper) whatever version the pool's url asks.
    label = f"{files.url.of(rel)} (pool '{files.pool}')"
    export = qcow2_opener.FuseExport(files.url.of(rel), writable, label,
                                     blockdevs=blockdevs(files, rel, fmt, writable))
    try:
        yield VolumeRef(path=export.raw_path, format="raw")
    finally:
        export.close()


@attrs.define
class DirectReader:
    """A disk file of the export as the core's :class:`~encompass_core.contracts.VolumeReader`."""

    file: Reader
    format: str
    label: str
    parallel: int = 1  # one libnfs context: its calls take turns

    @property
    def size(self) -> int:
        return self.file.size

    def read_into(self, offset: int, buffer: memoryview) -> int:
        return self.file.read_into(offset, buffer)


def direct_format(files: LibnfsExport, rel: str, fmt: str) -> str | None:
    """The format a copy of ``rel``'s bytes has (its own), or None when those bytes alone are
    not the volume (a qcow2 overlay reads through its backing file)."""
    if fmt == "raw":
        return fmt
    if fmt == "qcow2" and len(chain(files, rel, fmt)) == 1:
        return fmt
    return None


@contextlib.contextmanager
def read_directly(files: LibnfsExport, rel: str, fmt: str) -> Iterator[DirectReader]:
    """The file's bytes through libnfs for the block."""
    opened = files.open_read(rel)
    try:
        yield DirectReader(opened, fmt, files.url.of(rel))
    finally:
        opened.close()


@contextlib.contextmanager
def exposed_tree(files: LibnfsExport, rel: str, writable: bool, timeout: float,
                 setting: str) -> Iterator[VolumeRef]:
    """The tree copied to this host for the block; copied back in its place when ``writable``."""
    work = Path(rundir.make_dir("nfs-tree-"))
    local = work / "tree"
    try:
        try:
            copying.download_tree(files, rel, local)
        except OSError as exc:  # this host's side: a full disk, a device node without root
            raise DriverError(f"pool '{files.pool}': cannot copy {files.label}/{rel} to this host: "
                              f"{exc.strerror or exc}") from exc
        yield VolumeRef(path=str(local), format="dir")
        if writable:
            replace_tree(files, rel, local, timeout, setting)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def replace_tree(files: LibnfsExport, rel: str, local: Path, timeout: float, setting: str) -> None:
    """Upload ``local`` beside ``rel``, then swap it in; the old tree goes last."""
    folder, name = rel.rsplit("/", 1)
    fresh, old = f"{folder}/.{name}.partial", f"{folder}/.{name}.old"
    for leftover in (fresh, old):
        if files.lstat(leftover) is not None:
            copying.remove_tree(files, leftover)
    try:
        copying.upload_tree(local, files, fresh, timeout, setting)
    except BaseException:
        with contextlib.suppress(Exception):
            copying.remove_tree(files, fresh)
        raise
    files.rename(rel, old)
    files.rename(fresh, rel)
    copying.remove_tree(files, old)
