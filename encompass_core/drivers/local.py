"""The built-in ``local`` storage driver: volumes are files or directory trees in a folder.

Layout: ``<pool path>/<image>/vol<index>.raw|.qcow2`` or ``<pool path>/<image>/vol<index>/``
for a directory tree. Files are written under a ``.partial`` name and renamed when complete,
so a half-written volume is never taken for a whole one. Master volumes are made read-only.

Native clones: ``cow`` makes a qcow2 overlay backed by the source (chains of clones allowed up
to ``max_chain_depth``); ``full`` copies keeping holes (reflink where the filesystem has it).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs

from .. import rundir
from ..config import Config, Section
from ..contracts import (
    Attachment,
    AttachRequest,
    CloneProgress,
    DiscoveredVolume,
    Progress,
    StorageCapabilities,
    StorageDriver,
    VolumeReader,
)
from ..customization.access import VolumeRef
from ..errors import ConfigError, Conflict, DriverError, InvalidInput, NotFound, NotSupported
from ..model import Machine, Volume
from ..records import CloneRequest
from . import qcow2_overlay, qemuimg, streaming
from .sparsecopy import copy_sparse, try_reflink
from .tgt import TgtExport

#: The file name ending of a volume of each format the pool keeps (a tree is a folder).
VOLUME_SUFFIX = {"raw": ".raw", "qcow2": ".qcow2", "dir": ""}

class LocalStorageDriver(StorageDriver):
    """A pool kept in a local directory."""

    capabilities = StorageCapabilities(formats=("raw", "qcow2", "dir"), clone_modes=("cow", "full"),
                                       attach_kinds=("file", "dir"))

    def __init__(self, section: Section, config: Config) -> None:
        self.pool = section.name
        self.root = config.resolve_path(section.setting("path", None, str) or f"pools/{section.name}")
        self.max_chain_depth = section.setting("max_chain_depth", 8, int)
        self.concurrency = section.setting("concurrency", 4, int)
        # Seconds a whole-volume copy (qemu-img convert/rebase, cp -a) may take.
        self.copy_timeout = section.setting("copy_timeout", 3600, int)
        self._copy_setting = f"[pools.{self.pool}] copy_timeout"
        self.iscsi = _iscsi_export(section)
        if self.iscsi is not None:  # a volume is offered as an iSCSI LUN first, a file still
            self.capabilities = attrs.evolve(self.capabilities, attach_kinds=("iscsi", "file", "dir"))

    # -- places -----------------------------------------------------------------------------
    def _target(self, image: str, index: int, fmt: str) -> Path:
        directory = self.root / image
        directory.mkdir(parents=True, exist_ok=True)
        return directory / f"vol{index}{VOLUME_SUFFIX[fmt]}"

    def _partial(self, target: Path) -> Path:
        partial = target.with_name(f".{target.name}.partial")
        _remove(partial)
        return partial

    @contextlib.contextmanager
    def _writing(self, target: Path, mode: int | None = None) -> Iterator[Path]:
        """A file is written under its ``.partial`` name (yielded), then given ``mode`` and
        renamed to ``target``; on any failure the partial file goes."""
        partial = self._partial(target)
        try:
            yield partial
            if mode is not None:
                os.chmod(partial, mode)
            os.replace(partial, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()
            raise

    def _volume(self, index: int, fmt: str, path: Path, **kw: Any) -> Volume:
        return Volume(index=index, pool=self.pool, format=fmt, location=str(path), **kw)

    def inspect_source(self, source: Path) -> None:
        """Refuse, before anything is recorded, a source this pool cannot import."""
        if not Path(source).is_dir():
            inspect_file(Path(source))

    # -- import -----------------------------------------------------------------------------
    def import_volume(
        self, image: str, index: int, source: Path, progress: Progress | None = None
    ) -> Volume:
        source = Path(source)
        if source.is_dir():
            target = self._target(image, index, "dir")
            self._copy_tree(source, target)
            _make_readonly(target)
            return self._volume(index, "dir", target, readonly=True)
        fmt, size = inspect_file(source)
        target = self._target(image, index, fmt)
        if os.path.lexists(target):
            raise Conflict(f"{target} exists already in pool '{self.pool}'")
        partial = self._partial(target)
        try:
            copy_sparse(str(source), str(partial), progress)
            os.chmod(partial, 0o444)
            os.replace(partial, target)
        except OSError as exc:
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()
            raise DriverError(f"cannot copy {source} into pool '{self.pool}': {exc.strerror}") from exc
        return self._volume(index, fmt, target, size=size, readonly=True)

    def _copy_tree(self, source: Path, target: Path) -> None:
        if target.exists():
            raise Conflict(f"{target} exists already in pool '{self.pool}'")
        partial = self._partial(target)
        try:
            # cp -a keeps owners, modes, links, xattrs and holes; reflinks where it can.
            done = rundir.run(["cp", "-a", "--reflink=auto", "--", str(source), str(partial)],
                              f"cp of {source}", self.copy_timeout, self._copy_setting)
            if done.returncode != 0:
                raise DriverError(f"cannot copy tree {source}: {done.stderr.decode().strip()}")
            os.replace(partial, target)
        except BaseException:
            if partial.exists():
                _make_writable(partial)
                shutil.rmtree(partial, ignore_errors=True)
            raise

    # -- clones -----------------------------------------------------------------------------
    def clone_volume(self, source: Volume, source_driver: StorageDriver, request: CloneRequest,
                     progress: CloneProgress) -> Volume | None:
        """Native clones of this pool's volumes; from another local pool copy-on-write overlays
        (a qcow2 file may be backed by a file anywhere on this host) and trees. A full copy of a
        file from any other pool returns None: the core streams it (:meth:`write_volume`), with
        progress."""
        if not isinstance(source_driver, LocalStorageDriver) or source.format not in VOLUME_SUFFIX:
            return None  # not a file of ours: the core copies it through expose/write_volume
        if source.pool != self.pool and request.mode == "full" and source.format != "dir":
            return None
        self._check_ours(source)  # qemu-img -u would make an overlay of a missing file
        return self._clone(source, request.image, request.index, request.mode, request.max_depth)

    def _clone(self, source: Volume, image: str, index: int, mode: str, max_depth: int) -> Volume:
        if source.format == "dir":
            target = self._target(image, index, "dir")
            self._copy_tree(Path(source.location), target)
            _make_writable_top(target)
            return self._volume(index, "dir", target)
        if mode == "cow":
            return self._overlay(source, image, index, max_depth)
        if mode == "full":
            return self._full_copy(source, image, index)
        raise InvalidInput(f"unknown clone mode '{mode}': use cow or full")

    def _overlay(self, source: Volume, image: str, index: int, max_depth: int) -> Volume:
        depth = source.depth + 1
        if depth > max_depth:
            raise Conflict(
                f"a copy-on-write clone would be {depth} overlays deep, over the limit of "
                f"{max_depth} (max_chain_depth of pool '{self.pool}'); clone with --mode full, "
                "or make the source independent first (encompass image flatten SOURCE)"
            )
        target = self._target(image, index, "qcow2")
        backing = os.path.abspath(source.location)
        with self._writing(target) as partial:
            if qcow2_overlay.can_write(source.size, backing, source.format):
                # The very file qemu-img writes, without a process per clone.
                try:
                    qcow2_overlay.write_overlay(partial, source.size, backing, source.format)
                except OSError as exc:
                    raise DriverError(f"cannot write the overlay {target} in pool '{self.pool}': "
                                      f"{exc.strerror or exc}") from exc
            else:
                # -u: the size is known, so qemu-img need not open the whole backing chain.
                qemuimg.qemu_img(
                    "create", "-q", "-f", "qcow2", "-u", "-F", source.format,
                    "-b", backing, str(partial), str(source.size),
                )
        return self._volume(index, "qcow2", target, size=source.size, depth=depth)

    def _full_copy(self, source: Volume, image: str, index: int) -> Volume:
        layered = source.format == "qcow2" and source.depth > 0
        target = self._target(image, index, source.format)
        with self._writing(target, 0o644) as partial:
            if layered:  # the copy reads through the chain into one independent qcow2
                qemuimg.qemu_img("convert", "-q", "-W", "-O", "qcow2", source.location, str(partial),
                                 timeout=self.copy_timeout, setting=self._copy_setting)
            else:
                _copy_volume_file(source.location, partial, source.format, self.copy_timeout,
                                  self._copy_setting)
        return self._volume(index, source.format, target, size=source.size)

    def seal_volume(self, volume: Volume) -> Volume:
        """A master's volume: the file read-only, a tree's top folder (as imports make them)."""
        self._check_ours(volume)
        path = Path(volume.location)
        if volume.format == "dir":
            _make_readonly(path)
        else:
            os.chmod(path, 0o444)
        return attrs.evolve(volume, readonly=True)

    def flatten_volume(self, volume: Volume) -> Volume:
        if volume.format != "qcow2" or volume.depth == 0:
            return volume
        qemuimg.qemu_img("rebase", "-q", "-f", "qcow2", "-b", "", volume.location,
                         timeout=self.copy_timeout, setting=self._copy_setting)
        return Volume(index=volume.index, pool=volume.pool, format=volume.format,
                      location=volume.location, size=volume.size)

    # -- life and death ---------------------------------------------------------------------
    def delete_volume(self, volume: Volume) -> None:
        path = Path(volume.location)
        try:
            _remove(path)
        except OSError as exc:  # an immutable file, a read-only filesystem, a failing disk
            raise DriverError(f"cannot delete {exc.filename or path} from pool '{self.pool}': "
                              f"{exc.strerror or exc}") from exc
        with contextlib.suppress(OSError):
            path.parent.rmdir()  # the image's folder, once empty

    def cleanup(self, image: str) -> list[str]:
        """Remove whatever is left of ``image`` here (half-written volumes of a killed clone)."""
        leftover = self.root / image
        if not leftover.is_dir() or leftover.is_symlink():
            return []
        for path in leftover.rglob("*"):
            if path.is_dir() and not path.is_symlink():
                _make_writable(path)
        _make_writable(leftover)
        shutil.rmtree(leftover, ignore_errors=True)
        return [f"removed {leftover}"]

    def _check_ours(self, volume: Volume) -> None:
        if volume.format not in VOLUME_SUFFIX:
            raise NotSupported(f"pool '{self.pool}' (local) does not handle {volume.format} volumes")
        if not os.path.lexists(volume.location):
            raise NotFound(f"volume {volume.location} of pool '{self.pool}' is missing on disk")

    @contextlib.contextmanager
    def expose(self, volume: Volume, writable: bool) -> Iterator[VolumeRef]:
        """The file or tree itself: it is on the utility server already."""
        self._check_ours(volume)
        if writable and volume.readonly:
            raise Conflict(f"volume {volume.location} of pool '{self.pool}' is read-only (a master's)")
        yield VolumeRef(path=volume.location, format=volume.format)

    def write_volume(self, image: str, index: int, source: VolumeRef, size: int,
                     progress: Progress | None = None) -> Volume:
        """A new volume from one another pool exposes: a tree is copied with ``cp -a``, a raw
        file or device streamed keeping holes (:func:`.streaming.stream_raw`), a qcow2 chain or
        a URL read through ``qemu-img convert``. Written under a ``.partial`` name: a failed or
        interrupted copy leaves nothing that looks like a volume (``repair`` removes the rest)."""
        if source.format == "dir":
            target = self._target(image, index, "dir")
            self._copy_tree(Path(source.path), target)
            _make_writable_top(target)
            if progress:
                progress(size)
            return self._volume(index, "dir", target)
        fmt = _stream_format(source)
        if fmt is None:
            raise NotSupported(f"pool '{self.pool}' (local) keeps raw, qcow2 and dir volumes; it cannot "
                               f"read a {source.format} volume at {source.path}")
        target = self._target(image, index, fmt)
        if os.path.lexists(target):
            raise Conflict(f"{target} exists already in pool '{self.pool}'")
        with self._writing(target, 0o644) as partial:
            if fmt == "raw" and not streaming.is_url(source.path):
                self._stream_into(partial, source.path,
                                  lambda fd: streaming.stream_raw(source.path, fd, size, progress))
            else:
                streaming.convert(source.path, "raw" if source.format not in VOLUME_SUFFIX else source.format,
                                  str(partial), fmt, size, progress, self.copy_timeout,
                                  self._copy_setting)
        return self._volume(index, fmt, target, size=size)

    def write_stream(self, image: str, index: int, reader: VolumeReader, size: int,
                     progress: Progress | None = None) -> Volume | None:
        """A new raw or qcow2 file holding what another pool reads itself (an NFS export through
        libnfs), holes kept (:func:`.streaming.stream_reader`); under a ``.partial`` name as
        :meth:`write_volume`'s."""
        if reader.format not in ("raw", "qcow2"):
            return None
        target = self._target(image, index, reader.format)
        if os.path.lexists(target):
            raise Conflict(f"{target} exists already in pool '{self.pool}'")
        with self._writing(target, 0o644) as partial:
            self._stream_into(partial, reader.label,
                              lambda fd: streaming.stream_reader(reader, fd, progress))
        return self._volume(index, reader.format, target, size=size)

    def _stream_into(self, partial: Path, source: str, copy: Callable[[int], object]) -> None:
        """Create ``partial`` and run ``copy`` on its descriptor; this host's errors (a full
        disk) in one line."""
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            copy(fd)
        except OSError as exc:
            raise DriverError(f"cannot copy {source} into pool '{self.pool}': "
                              f"{exc.strerror or exc}") from exc
        finally:
            os.close(fd)

    def attach(self, volume: Volume, machine: Machine, request: AttachRequest) -> Attachment:
        self._check_ours(volume)
        if self.iscsi is not None and "iscsi" in request.kinds and volume.format != "dir":
            return self._attach_iscsi(volume, machine, request)
        kind = "dir" if volume.format == "dir" else "file"
        if kind not in request.kinds:
            raise NotSupported(f"pool '{self.pool}' offers its volumes as {kind}s; the machine takes "
                               f"{', '.join(request.kinds)}")
        return Attachment(index=volume.index, kind=kind, address=volume.location,
                          format=volume.format, readonly=volume.readonly, boot=request.boot,
                          lun=request.lun)

    def _attach_iscsi(self, volume: Volume, machine: Machine, request: AttachRequest) -> Attachment:
        """The volume's file as a LUN of the machine's own tgt target, bound to its initiator
        (its iSCSI host port, else a name made for it and given to the platform)."""
        if volume.format != "raw":
            raise NotSupported(
                f"pool '{self.pool}' serves raw volumes over iSCSI, and {volume.location} is "
                f"{volume.format} (a copy-on-write clone); clone it with --mode full to boot it "
                "over iSCSI"
            )
        ports = [port.address for port in machine.host_ports if port.kind == "iscsi"]
        initiator = ports[0] if ports else self.iscsi.default_initiator(machine.name)
        target, lun = self.iscsi.attach(os.path.abspath(volume.location), machine.name, initiator,
                                        request.lun, volume.readonly)
        return Attachment(index=volume.index, kind="iscsi",
                          address=f"iscsi://{self.iscsi.portal}/{target}/{lun}", format="raw",
                          readonly=volume.readonly, boot=request.boot, lun=lun,
                          details={"initiator": initiator, "target": target, "portal": self.iscsi.portal})

    def detach(self, volume: Volume, machine: Machine) -> None:
        """A file needs nothing undone (the hypervisor reads it in place); a volume served over
        iSCSI leaves the machine's target."""
        if self.iscsi is not None:
            self.iscsi.detach(os.path.abspath(volume.location), machine.name)

    def discover(self) -> list[DiscoveredVolume]:
        """Every complete volume in the pool."""
        found = []
        if not self.root.is_dir():
            return found
        for image_dir in sorted(p for p in self.root.iterdir() if p.is_dir()):
            for entry in sorted(image_dir.iterdir()):
                name = entry.name
                if not name.startswith("vol") or name.startswith("."):
                    continue
                stem, _, suffix = name.partition(".")
                if not stem[3:].isdigit():
                    continue
                fmt = "dir" if entry.is_dir() else suffix
                if fmt not in VOLUME_SUFFIX:
                    continue
                size = 0 if fmt == "dir" else entry.stat().st_size
                backing = None
                if fmt == "qcow2":
                    details = qemuimg.info(str(entry))
                    size = details.get("virtual-size", size)
                    backing = details.get("full-backing-filename")
                volume = self._volume(int(stem[3:]), fmt, entry, size=size,
                                      readonly=not os.access(entry, os.W_OK) or _is_readonly(entry))
                found.append(DiscoveredVolume(image_dir.name, volume, backing))
        return found


def inspect_file(source: Path) -> tuple[str, int]:
    """Format and virtual size of a file offered for import; refuse what cannot be a master."""
    if not source.exists():
        raise NotFound(f"no such file or directory: {source}")
    if not source.is_file():
        raise InvalidInput(f"{source} is neither a regular file nor a directory")
    fmt = qemuimg.sniff_format(str(source))
    if fmt == "raw":
        size = source.stat().st_size
        if size == 0:
            raise InvalidInput(f"{source} is empty; a master volume needs content")
        return fmt, size
    try:
        details = qemuimg.info(str(source))
        qemuimg.qemu_img("check", "-q", "-f", "qcow2", "-U", str(source))
    except DriverError as exc:
        raise InvalidInput(f"{source} is not a usable qcow2 image (half-written?): {exc}") from exc
    if details.get("backing-filename"):
        raise InvalidInput(
            f"{source} is a qcow2 overlay of {details['backing-filename']}; import a standalone "
            f"image (qemu-img convert -O qcow2 {source} standalone.qcow2)"
        )
    return fmt, int(details["virtual-size"])


def _copy_volume_file(source: str, partial: Path, fmt: str, timeout: float, setting: str) -> None:
    """A full, independent copy: a reflink when the filesystem shares extents, else qemu-img
    with direct I/O (the fastest bare copy; holes kept), else copy_file_range."""
    if try_reflink(source, str(partial)):
        return
    try:
        qemuimg.qemu_img("convert", "-q", "-t", "none", "-W", "-f", fmt, "-O", fmt, source, str(partial),
                         timeout=timeout, setting=setting)
        return
    except DriverError:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()  # e.g. no O_DIRECT on this filesystem (tmpfs): copy by hand
    copy_sparse(source, str(partial))


def _iscsi_export(section: Section) -> TgtExport | None:
    if section.setting("export", "none", str) != "iscsi":
        return None
    control = section.setting("tgt_control", None, int)
    if control is None:
        raise ConfigError(f"[pools.{section.name}] export = \"iscsi\" needs tgt_control = N, the "
                          "control socket number of the tgtd serving it (tgtd -C N)")
    return TgtExport(section.name, control, section.setting("iscsi_portal", "127.0.0.1:3260", str),
                     section.setting("iqn_prefix", "iqn.2026-12.org.encompass", str))


def _stream_format(source: VolumeRef) -> str | None:
    """The format a volume streamed from ``source`` is kept in here: its own when raw or qcow2;
    raw for what QEMU reads by URL or a block device (a mapped LUN); None when unreadable."""
    if source.format in ("raw", "qcow2"):
        return source.format
    if streaming.is_url(source.path):
        return "raw"
    with contextlib.suppress(OSError):
        if stat.S_ISBLK(os.stat(source.path).st_mode):
            return "raw"
    return None


def _is_readonly(path: Path) -> bool:
    return not (path.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def _make_readonly(tree: Path) -> None:
    # Only the top folder: file modes inside a root tree are part of the image.
    tree.chmod(tree.stat().st_mode & ~0o222)


def _make_writable_top(tree: Path) -> None:
    tree.chmod(tree.stat().st_mode | stat.S_IWUSR)


def _remove(path: Path) -> None:
    """Remove the file or folder tree at ``path`` (folders made writable first); none is fine."""
    if path.is_dir() and not path.is_symlink():
        _make_writable(path)
        shutil.rmtree(path)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _make_writable(tree: Path) -> None:
    with contextlib.suppress(OSError):
        _make_writable_top(tree)

