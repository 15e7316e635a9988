"""The ``nfs`` storage driver: volumes are files and directory trees on an NFS export.

Layout on the export, as the local pool's: ``<image>/vol<index>.raw|.qcow2`` or
``<image>/vol<index>/`` for a tree (an NFS root). A volume is written under a hidden
``.vol<index>….partial`` name and renamed when whole, so a half-written volume is never taken
for one, and a failed copy removes it (or, when the server went away, ``cleanup`` does once it
is back). Masters are made read-only. Clones are the server's: a qcow2 overlay whose backing
file is named relative to it (``../master/vol0.raw``: right wherever the export is mounted),
or a full copy made within the export.

The export is reached through a mount of it on this host (``path``: copies are the kernel's,
reflink or ``copy_file_range``) or through libnfs (``url`` alone: no mount needed).
"""

from __future__ import annotations

import contextlib
import posixpath
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from encompass_core import rundir
from encompass_core.config import Config, Section
from encompass_core.contracts import (
    Attachment,
    AttachRequest,
    CloneProgress,
    DiscoveredVolume,
    Progress,
    StorageCapabilities,
    StorageDriver,
    VolumeReader,
)
from encompass_core.customization.access import VolumeRef
from encompass_core.drivers import qemuimg
from encompass_core.drivers.local import VOLUME_SUFFIX, inspect_file
from encompass_core.errors import (
    ConfigError,
    Conflict,
    DriverError,
    EncompassError,
    InvalidInput,
    NotFound,
    NotSupported,
)
from encompass_core.model import Machine, Volume
from encompass_core.records import CloneRequest

from . import attachments, copying, discovery, expose
from .client import LibnfsExport
from .files import ExportFiles, MountedExport
from .nfsurl import NfsUrl, parse_nfs_url
from .qcow2 import make_overlay


class NfsStorageDriver(StorageDriver):
    """A pool on one NFS export."""

    def __init__(self, section: Section, config: Config) -> None:
        self.pool = section.name
        where = f"{config.path}: [pools.{self.pool}]"
        url = section.setting("url", None, str)
        path = section.setting("path", None, str)
        if not url and not path:
            raise ConfigError(f"{where}: needs 'url' (nfs://HOST/EXPORT) or 'path' (where this "
                              "host has the export mounted)")
        self.url: NfsUrl | None = parse_nfs_url(url, where) if url else None
        self.mounts: dict[str, str] = dict(section.setting("mounts", {}, dict))
        for host, point in self.mounts.items():
            if not isinstance(point, str) or not point.startswith("/"):
                raise ConfigError(f"{where}: mounts.{host} should be an absolute path, found {point!r}")
        self.max_chain_depth = section.setting("max_chain_depth", 8, int)
        self.concurrency = section.setting("concurrency", 4, int)
        self.copy_timeout = section.setting("copy_timeout", 3600, int)
        self._copy_setting = f"[pools.{self.pool}] copy_timeout"
        self.files: ExportFiles
        if path:
            self.files = MountedExport(config.resolve_path(path), self.pool)
        else:
            assert self.url is not None
            self.files = LibnfsExport(self.url, self.pool, section.setting("timeout", 60, int))
        kinds = ("file", "dir") if (path or self.mounts) else ()
        # libnfs 4.0 cannot set a folder's mode or owner over NFSv4: no trees there.
        formats = ("raw", "qcow2", "dir") if self.files.folder_modes else ("raw", "qcow2")
        self.capabilities = StorageCapabilities(  # type: ignore[misc]  # per pool: what it is set up for
            formats=formats, clone_modes=("cow", "full"),
            attach_kinds=kinds + (("nfs",) if self.url else ()))

    @property
    def mounted(self) -> bool:
        """Whether the export is reached through a mount on this host (``path``)."""
        return isinstance(self.files, MountedExport)

    # -- places -------------------------------------------------------------------------------
    def _location(self, rel: str) -> str:
        if isinstance(self.files, MountedExport):
            return str(self.files.local(rel))
        assert self.url is not None
        return self.url.of(rel)

    def _rel(self, volume: Volume) -> str:
        top = self._location("") + "/"
        if not volume.location.startswith(top):
            raise NotFound(f"volume {volume.location} is not on the export of pool '{self.pool}' "
                           f"({self.files.label})")
        return volume.location[len(top):]

    def _volume(self, index: int, fmt: str, rel: str, **kw: Any) -> Volume:
        return Volume(index=index, pool=self.pool, format=fmt, location=self._location(rel), **kw)

    def _existing(self, volume: Volume) -> str:
        """The volume's path in the export; NotFound when it is not there."""
        if volume.format not in VOLUME_SUFFIX:
            raise NotSupported(f"pool '{self.pool}' (nfs) does not handle {volume.format} volumes")
        rel = self._rel(volume)
        if self.files.lstat(rel) is None:
            raise NotFound(f"volume {volume.location} of pool '{self.pool}' is missing on the export")
        return rel

    @contextlib.contextmanager
    def _writing(self, image: str, index: int, fmt: str, mode: int) -> Iterator[str]:
        """Yield the hidden partial path of a new volume; when the block ends well, give it
        ``mode`` and its name. On failure nothing is left: the partial copy goes, and the
        image's folder too when this made it."""
        rel = f"{image}/vol{index}{VOLUME_SUFFIX[fmt]}"
        partial = f"{image}/.vol{index}{VOLUME_SUFFIX[fmt]}.partial"
        made_folder = False
        if self.files.lstat(image) is None:
            self.files.mkdir(image, 0o755)
            made_folder = True
        else:
            self._check_free(image, index)
        try:
            copying.remove_tree(self.files, partial)  # a killed copy's leftover
            yield partial
            self.files.chmod(partial, mode)
            self._check_free(image, index)  # made meanwhile by another process?
            self.files.rename(partial, rel)
        except BaseException as failure:
            try:
                copying.remove_tree(self.files, partial)
                if made_folder and not self.files.listdir(image):
                    self.files.rmdir(image)
            except EncompassError:
                if isinstance(failure, DriverError):
                    raise DriverError(f"{failure}; the half-written {self._location(partial)} stays "
                                      f"until the server answers again (then `encompass image delete "
                                      f"{image}` removes it, or `encompass repair` if this process "
                                      "is killed first)") from failure
            if isinstance(failure, OSError):  # a file of this host, or a mounted export's
                raise DriverError(f"pool '{self.pool}': cannot write {self._location(rel)}: "
                                  f"{failure.strerror or failure}") from failure
            raise

    def _check_free(self, image: str, index: int) -> None:
        """A Conflict when volume ``index`` of ``image`` is there already, in any format."""
        for suffix in VOLUME_SUFFIX.values():
            rel = f"{image}/vol{index}{suffix}"
            if self.files.lstat(rel) is not None:
                raise Conflict(f"{self._location(rel)} exists already in pool '{self.pool}'")

    # -- import ---------------------------------------------------------------------------------
    def inspect_source(self, source: Path) -> None:
        """Refuse, before anything is recorded, a source this pool cannot import."""
        if Path(source).is_dir():
            self._check_trees()
        else:
            inspect_file(Path(source))

    def _check_trees(self) -> None:
        if not self.files.folder_modes:
            raise NotSupported(f"pool '{self.pool}' reaches its export over NFSv4 through libnfs, "
                               "which cannot set a folder's mode or owner: directory trees need "
                               "NFSv3 (drop ?version=4 from its url) or a mounted path")

    def import_volume(self, image: str, index: int, source: Path,
                      progress: Progress | None = None) -> Volume:
        source = Path(source)
        if source.is_dir():
            self._check_trees()
            with self._writing(image, index, "dir", 0o555) as partial:
                copying.upload_tree(source, self.files, partial, self.copy_timeout, self._copy_setting)
            return self._volume(index, "dir", f"{image}/vol{index}", readonly=True)
        fmt, size = inspect_file(source)
        with self._writing(image, index, fmt, 0o444) as partial:
            copying.upload_file(source, self.files, partial, 0o644, progress)
        return self._volume(index, fmt, f"{image}/vol{index}{VOLUME_SUFFIX[fmt]}", size=size, readonly=True)

    # -- clones ---------------------------------------------------------------------------------
    def clone_volume(self, source: Volume, source_driver: StorageDriver, request: CloneRequest,
                     progress: CloneProgress) -> Volume | None:
        if not isinstance(source_driver, NfsStorageDriver) or source.format not in VOLUME_SUFFIX \
                or source_driver.files.label != self.files.label:
            return None  # not on this export: the core copies it through expose/write_volume
        source_rel = self._existing(source)
        image, index = request.image, request.index
        if request.mode not in ("cow", "full"):
            raise InvalidInput(f"unknown clone mode '{request.mode}': use cow or full")
        if source.format == "dir":
            with self._writing(image, index, "dir", 0o755) as partial:
                copying.copy_tree(self.files, source_rel, partial, self.copy_timeout, self._copy_setting)
            return self._volume(index, "dir", f"{image}/vol{index}")
        if request.mode == "cow":
            return self._overlay(source, source_rel, image, index, request.max_depth)
        return self._full_copy(source, source_rel, image, index, progress)

    def _overlay(self, source: Volume, source_rel: str, image: str, index: int,
                 max_depth: int) -> Volume:
        depth = source.depth + 1
        if depth > max_depth:
            raise Conflict(
                f"a copy-on-write clone would be {depth} overlays deep, over the limit of {max_depth} "
                f"(max_chain_depth of pool '{self.pool}'); clone with --mode full, or make the "
                "source independent first (encompass image flatten SOURCE)")
        backing = posixpath.relpath(source_rel, image)  # ../master/vol0.raw
        with self._writing(image, index, "qcow2", 0o644) as partial:
            if isinstance(self.files, MountedExport):
                make_overlay(str(self.files.local(partial)), backing, source.format, source.size)
            else:
                with tempfile.TemporaryDirectory(dir=rundir.current()) as work:
                    made = Path(work, "overlay.qcow2")
                    make_overlay(str(made), backing, source.format, source.size)
                    copying.upload_file(made, self.files, partial)
        return self._volume(index, "qcow2", f"{image}/vol{index}.qcow2", size=source.size,
                            depth=depth)

    def _full_copy(self, source: Volume, source_rel: str, image: str, index: int,
                   progress: CloneProgress) -> Volume:
        layered = source.format == "qcow2" and source.depth > 0
        if not layered:
            with self._writing(image, index, source.format, 0o644) as partial:
                copying.copy_file(self.files, source_rel, partial, 0o644, progress.advance)
            return self._volume(index, source.format, f"{image}/vol{index}{VOLUME_SUFFIX[source.format]}",
                                size=source.size)
        if isinstance(self.files, MountedExport):  # the copy reads through the chain
            with self._writing(image, index, "qcow2", 0o644) as partial:
                qemuimg.qemu_img("convert", "-q", "-W", "-O", "qcow2", str(self.files.local(source_rel)),
                                 str(self.files.local(partial)), timeout=self.copy_timeout,
                                 setting=self._copy_setting)
            return self._volume(index, "qcow2", f"{image}/vol{index}.qcow2", size=source.size)
        # Through libnfs: the chain's raw view, read on the server by QEMU, written back sparse.
        with expose.exposed_file(self.files, source_rel, "qcow2", False) as ref, \
                self._writing(image, index, "raw", 0o644) as partial:
            copying.upload_file(Path(ref.path), self.files, partial, 0o644, progress.advance)
        return self._volume(index, "raw", f"{image}/vol{index}.raw", size=source.size)

    def flatten_volume(self, volume: Volume) -> Volume:
        """Make an overlay independent: a full copy replaces it (on the server when mounted)."""
        if volume.format != "qcow2" or volume.depth == 0:
            return volume
        rel = self._existing(volume)
        image, name = rel.rsplit("/", 1)
        index = int(discovery.VOLUME_NAME.match(name).group(1))  # type: ignore[union-attr]
        flat_image = f"{image}/.flatten"
        copying.remove_tree(self.files, flat_image)
        try:
            made = self._full_copy(volume, rel, flat_image, index, CloneProgress())
            made_rel = self._rel(made)
            target = f"{image}/vol{index}{VOLUME_SUFFIX[made.format]}"
            self.files.rename(made_rel, target)
            if target != rel:
                self.files.unlink(rel)
        finally:
            copying.remove_tree(self.files, flat_image)
        return self._volume(index, made.format, target, size=volume.size)

    # -- life and death -------------------------------------------------------------------------
    def delete_volume(self, volume: Volume) -> None:
        rel = self._rel(volume)
        copying.remove_tree(self.files, rel)
        folder = posixpath.dirname(rel)
        with contextlib.suppress(EncompassError):
            if folder and not self.files.listdir(folder):
                self.files.rmdir(folder)  # the image's folder, once empty

    def cleanup(self, image: str) -> list[str]:
        """Remove whatever is left of ``image`` on the export (half-written volumes)."""
        entry = self.files.lstat(image)
        if entry is None or entry.kind != "dir":
            return []
        copying.remove_tree(self.files, image)
        return [f"removed {self._location(image)}"]

    # -- on the utility server ------------------------------------------------------------------
    @contextlib.contextmanager
    def expose(self, volume: Volume, writable: bool) -> Iterator[VolumeRef]:
        """The file or tree itself when mounted; else a FUSE view (files) or a copy (trees)."""
        rel = self._existing(volume)
        if writable and volume.readonly:
            raise Conflict(f"volume {volume.location} of pool '{self.pool}' is read-only (a master's)")
        if isinstance(self.files, MountedExport):
            yield VolumeRef(path=str(self.files.local(rel)), format=volume.format)
        elif volume.format == "dir":
            with expose.exposed_tree(self.files, rel, writable, self.copy_timeout,
                                     self._copy_setting) as ref:
                yield ref
        else:
            with expose.exposed_file(self.files, rel, volume.format, writable) as ref:
                yield ref

    def open_reader(self, volume: Volume) -> contextlib.AbstractContextManager[VolumeReader] | None:
        """A raw file, or a qcow2 that reads through nothing, read by libnfs itself for the
        core's copy into another pool (a FUSE view answers one read at a time); None for a
        mounted export (the file is on this host already), a tree or an overlay."""
        if isinstance(self.files, MountedExport) or volume.format not in ("raw", "qcow2"):
            return None
        rel = self._existing(volume)
        fmt = expose.direct_format(self.files, rel, volume.format)
        return None if fmt is None else expose.read_directly(self.files, rel, fmt)

    def write_volume(self, image: str, index: int, source: VolumeRef, size: int,
                     progress: Progress | None = None) -> Volume:
        if source.format == "dir":
            self._check_trees()
            with self._writing(image, index, "dir", 0o755) as partial:
                copying.upload_tree(Path(source.path), self.files, partial, self.copy_timeout,
                                    self._copy_setting)
            return self._volume(index, "dir", f"{image}/vol{index}")
        if source.format not in ("raw", "qcow2"):
            raise NotSupported(f"pool '{self.pool}' (nfs) keeps raw, qcow2 and dir volumes, not "
                               f"{source.format}")
        fmt = source.format
        layered = fmt == "qcow2" and qemuimg.info(source.path).get("backing-filename")
        with self._writing(image, index, fmt, 0o644) as partial:
            if not layered:
                copying.upload_file(Path(source.path), self.files, partial, 0o644, progress)
            elif isinstance(self.files, MountedExport):
                qemuimg.qemu_img("convert", "-q", "-W", "-O", "qcow2", source.path,
                                 str(self.files.local(partial)), timeout=self.copy_timeout,
                                 setting=self._copy_setting)
            else:  # an overlay of this host: made independent here, then sent
                with tempfile.TemporaryDirectory(dir=rundir.current()) as work:
                    flat = Path(work, "flat.qcow2")
                    qemuimg.qemu_img("convert", "-q", "-O", "qcow2", source.path, str(flat),
                                     timeout=self.copy_timeout, setting=self._copy_setting)
                    copying.upload_file(flat, self.files, partial, 0o644, progress)
        return self._volume(index, fmt, f"{image}/vol{index}{VOLUME_SUFFIX[fmt]}", size=size)

    def write_stream(self, image: str, index: int, reader: VolumeReader, size: int,
                     progress: Progress | None = None) -> Volume | None:
        """A new raw or qcow2 file from what another pool reads itself (another export, through
        libnfs): written by libnfs too, or into the mount, with no FUSE view between the two
        (which answers one read at a time); zero blocks left as holes, under a partial name as
        :meth:`write_volume`'s."""
        if reader.format not in ("raw", "qcow2"):
            return None
        with self._writing(image, index, reader.format, 0o644) as partial:
            copying.upload_reader(reader.read_into, reader.size, reader.label, self.files, partial,
                                  0o644, progress, readers=max(1, reader.parallel))
        return self._volume(index, reader.format, f"{image}/vol{index}{VOLUME_SUFFIX[reader.format]}",
                            size=size)

    # -- machines -------------------------------------------------------------------------------
    def attach(self, volume: Volume, machine: Machine, request: AttachRequest) -> Attachment:
        rel = self._existing(volume)
        default = str(self.files.root) if isinstance(self.files, MountedExport) else None
        return attachments.attach(self.pool, self.url, self.mounts, default,
                                  self.capabilities.attach_kinds, volume, rel, machine, request)

    def detach(self, volume: Volume, machine: Machine) -> None:
        """Nothing to undo: machines reach the export themselves."""

    # -- discovery ------------------------------------------------------------------------------
    def discover(self) -> list[DiscoveredVolume]:
        """Every complete volume on the export (hidden and partial files are not volumes)."""
        return [DiscoveredVolume(found.image,
                                 self._volume(found.index, found.format, found.rel, size=found.size,
                                              readonly=found.readonly),
                                 self._location(found.backing) if found.backing_inside else found.backing)
                for found in discovery.volumes_on(self.files)]

    def close(self) -> None:
        self.files.close()
