"""The ``esx`` storage driver: volumes are VMDKs on a vSphere datastore.

Layout: ``[DATASTORE] FOLDER/<image>/vol<index>.vmdk``, ESX's own pair of a descriptor and a
flat extent (:mod:`.vmdk`). A volume is complete when its descriptor is there: it is written
last. A master's volume has a ``vol<index>.readonly`` marker beside it (a datastore has no file
modes). Full clones are ``VirtualDiskManager.CopyVirtualDisk_Task`` (a vSphere task, recorded
as a storage job); everything else moves through the datastore's HTTP file access: an import
uploads, ``expose`` downloads the flat extent for the utility server's openers and uploads it
back when it was writable.

Not here: copy-on-write (linked) clones, and templates cloned with ``CloneVM_Task``. vSphere
makes them as delta disks on a parent's snapshot; vcsim 0.24, the only server the tests have,
takes a snapshot without a delta disk, clones with a fresh empty disk whose backing has no
parent (whatever the disk move type), and echoes a ``parent`` given to a new disk without
checking it exists: nothing could prove them (README), so ``cow`` is not declared and the
core refuses it before anything is made.
"""

from __future__ import annotations

import contextlib
import posixpath
import shutil
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
    JobStatus,
    Progress,
    StorageCapabilities,
    StorageDriver,
)
from encompass_core.customization.access import VolumeRef
from encompass_core.drivers import qemuimg
from encompass_core.errors import Conflict, DriverError, NotFound, NotSupported
from encompass_core.model import Machine, StorageJob, Volume
from encompass_core.records import CloneRequest

from . import tasks, vmdk
from .connection import Session, fault_message, pyvmomi
from .files import DatastoreFiles
from .inventory import Collector

READONLY = ".readonly"


class EsxStorageDriver(StorageDriver):
    """A pool of VMDKs in a folder of one datastore."""

    capabilities = StorageCapabilities(formats=("vmdk",), clone_modes=("full",),
                                       attach_kinds=("datastore",), imports=True, long_jobs=True)

    def __init__(self, section: Section, config: Config) -> None:
        self.pool = section.name
        self.session = Session(section, config, f"pool '{self.pool}'")
        self.collector = Collector(self.session)
        self.datastore: str = section.settings.get("datastore", "")
        self.folder: str = (section.settings.get("folder") or "encompass").strip("/")
        self.concurrency = section.settings.get("concurrency", 2)
        self._files: DatastoreFiles | None = None
        self._datacenter: Any = None

    # -- where things are ----------------------------------------------------------------------
    def _path(self, image: str, index: int) -> str:
        return f"{self.folder}/{image}/vol{index}.vmdk"

    def _location(self, path: str) -> str:
        return f"[{self.datastore}] {path}"

    def _path_of(self, volume: Volume) -> str:
        prefix = f"[{self.datastore}] "
        if volume.pool != self.pool or not volume.location.startswith(prefix):
            raise NotSupported(f"pool '{self.pool}' holds VMDKs on datastore '{self.datastore}', "
                               f"not {volume.location} (pool '{volume.pool}')")
        return volume.location[len(prefix):]

    def _volume(self, index: int, path: str, size: int, readonly: bool = False) -> Volume:
        return Volume(index=index, pool=self.pool, format="vmdk", location=self._location(path),
                      size=size, readonly=readonly,
                      data={"datastore": self.datastore, "datacenter": self.files.datacenter})

    @property
    def files(self) -> DatastoreFiles:
        """The datastore's HTTP file access (the datacenter and datastore checked first)."""
        if self._files is None:
            inventory = self.collector.read(("Datacenter", "Datastore"))
            if inventory.named("Datastore", self.datastore) is None:
                known = ", ".join(sorted(item.name for item in inventory.datastores)) or "none"
                raise NotFound(f"pool '{self.pool}': {self.session.where} has no datastore "
                               f"'{self.datastore}' (datastores: {known})")
            name = self.session.datacenter_name
            datacenters = inventory.of("Datacenter")
            if name is None:
                if not datacenters:
                    raise NotFound(f"pool '{self.pool}': {self.session.where} has no datacenter")
                name = datacenters[0].name
                self._datacenter = datacenters[0].ref
            else:
                self._datacenter = self.session.call(
                    f"find datacenter '{name}'", self.session.content.searchIndex.FindByInventoryPath,
                    name)
            self._files = DatastoreFiles(self.session, name, self.datastore)
        return self._files

    def _check_exists(self, volume: Volume) -> str:
        path = self._path_of(volume)
        if not self.files.exists(path):
            raise NotFound(f"volume {volume.location} of pool '{self.pool}' is missing on the "
                           "datastore")
        return path

    # -- import, write -------------------------------------------------------------------------
    def inspect_source(self, source: Path) -> None:
        from encompass_core.drivers.local import inspect_file

        if Path(source).is_dir():
            raise NotSupported(f"pool '{self.pool}' keeps disk images (VMDKs), not directory trees")
        inspect_file(Path(source))

    def import_volume(self, image: str, index: int, source: Path,
                      progress: Progress | None = None) -> Volume:
        self.inspect_source(source)
        path = self._path(image, index)
        if self.files.exists(path):
            raise Conflict(f"{self._location(path)} exists already in pool '{self.pool}'")
        size = self._put(VolumeRef(path=str(source), format=qemuimg.sniff_format(str(source))),
                         path, progress)
        self.files.write_bytes(posixpath.splitext(path)[0] + READONLY, b"")
        return self._volume(index, path, size, readonly=True)

    def write_volume(self, image: str, index: int, source: VolumeRef, size: int,
                     progress: Progress | None = None) -> Volume:
        if source.format not in ("raw", "qcow2"):
            raise NotSupported(f"pool '{self.pool}' makes VMDKs of disk images, not of "
                               f"{source.format} volumes")
        path = self._path(image, index)
        if self.files.exists(path):
            raise Conflict(f"{self._location(path)} exists already in pool '{self.pool}'")
        return self._volume(index, path, self._put(source, path, progress))

    def _put(self, source: VolumeRef, path: str, progress: Progress | None) -> int:
        """Upload a raw or qcow2 disk as the flat extent of ``path``, then its descriptor (last:
        a volume without one is a partial upload)."""
        work = Path(rundir.make_dir("esx-upload-"))
        try:
            raw = Path(source.path)
            if source.format == "qcow2":
                raw = work / "disk.raw"
                qemuimg.qemu_img("convert", "-q", "-f", "qcow2", "-O", "raw", source.path, str(raw),
                                 timeout=self.session.task_timeout)
            size = vmdk.sectors(raw.stat().st_size) * vmdk.SECTOR
            flat = vmdk.flat_name(path)
            self.files.upload(raw, flat, size, progress)
            self.files.write_bytes(path, vmdk.descriptor(posixpath.basename(flat), size).encode())
            return size
        finally:
            shutil.rmtree(work, ignore_errors=True)

    # -- clones --------------------------------------------------------------------------------
    def clone_volume(self, source: Volume, source_driver: StorageDriver, request: CloneRequest,
                     progress: CloneProgress) -> Volume | None:
        """A full clone of a VMDK on this server, by ``CopyVirtualDisk_Task``; anything else
        (another pool's volume, a copy-on-write clone) is left to the core."""
        if request.mode != "full" or not isinstance(source_driver, EsxStorageDriver) or \
                source.format != "vmdk" or not self._same_server(source_driver):
            return None
        source_driver._check_exists(source)
        path = self._path(request.image, request.index)
        if self.files.exists(path):
            raise Conflict(f"{self._location(path)} exists already in pool '{self.pool}'")
        self._make_folder(posixpath.dirname(path))
        manager = self.session.content.virtualDiskManager
        action = f"copy {source.location} to {self._location(path)}"
        task = self.session.call(action, manager.CopyVirtualDisk_Task,
                                 sourceName=source.location, sourceDatacenter=source_driver._datacenter,
                                 destName=self._location(path), destDatacenter=self._datacenter,
                                 force=False)
        progress.started_job(task._moId, action)
        done = [0]

        def advance(percent: int) -> None:
            now = source.size * min(percent, 100) // 100
            if now > done[0]:
                progress.advance(now - done[0])
                done[0] = now

        tasks.wait(self.session, task, action, advance)
        self._fix_descriptor(path)
        return self._volume(request.index, path, source.size)

    def _make_folder(self, folder: str) -> None:
        """vSphere copies a disk only into a folder that exists."""
        manager = self.session.content.fileManager
        location = self._location(folder)
        try:
            self.session.call(f"make folder {location}", manager.MakeDirectory, name=location,
                              datacenter=self._datacenter, createParentDirectories=True)
        except DriverError as exc:
            if "FileAlreadyExists" not in str(exc) and "already exists" not in str(exc):
                raise

    def _same_server(self, other: EsxStorageDriver) -> bool:
        return (other.session.host, other.session.port) == (self.session.host, self.session.port)

    def _fix_descriptor(self, path: str) -> None:
        """ESX rewrites a copied descriptor to name its own extent; vcsim copies it byte for
        byte, leaving it pointing at the source's extent: point it at the copy's."""
        flat = posixpath.basename(vmdk.flat_name(path))
        text = self.files.read_text(path)
        found = vmdk.extent(text)
        if found is not None and found[1] != flat:
            self.files.write_bytes(path, vmdk.renamed(text, flat).encode())

    def job_status(self, job: StorageJob) -> JobStatus:
        """Where a copy task stands (a task vSphere no longer knows is :class:`NotFound`)."""
        task = self._task(job)
        info = self.session.call(f"follow task {job.id}", tasks.task_state, self.session, task)
        if info.state == "success":
            return JobStatus("done", 100.0)
        if info.state == "error":
            return JobStatus("failed", None, fault_message(info.error))
        return JobStatus("running", float(info.progress or 0))

    def cancel_job(self, job: StorageJob) -> None:
        task = self._task(job)
        with contextlib.suppress(DriverError):
            tasks.cancel(self.session, task)

    def _task(self, job: StorageJob) -> Any:
        vim, _ = pyvmomi()
        return vim.Task(job.id, self.session.service._stub)

    # -- expose ----------------------------------------------------------------------------------
    @contextlib.contextmanager
    def expose(self, volume: Volume, writable: bool) -> Iterator[VolumeRef]:
        """Download the flat extent (raw bytes) into this process's run directory; when
        writable, upload it back at the end of the block (not after an error)."""
        if writable and volume.readonly:
            raise Conflict(f"volume {volume.location} of pool '{self.pool}' is read-only (a master's)")
        path = self._check_exists(volume)
        work = Path(rundir.make_dir("esx-expose-"))
        try:
            local = work / "disk.raw"
            self.files.download(vmdk.flat_name(path), local)
            if not writable:
                local.chmod(0o444)
            yield VolumeRef(path=str(local), format="raw")
            if writable:
                self.files.upload(local, vmdk.flat_name(path))
        finally:
            shutil.rmtree(work, ignore_errors=True)

    # -- attach ----------------------------------------------------------------------------------
    def attach(self, volume: Volume, machine: Machine, request: AttachRequest) -> Attachment:
        """The VMDK's datastore path: the platform adds it to the VM's definition."""
        if "datastore" not in request.kinds:
            raise NotSupported(f"pool '{self.pool}' offers its volumes as VMDKs on datastore "
                               f"'{self.datastore}'; the machine takes {', '.join(request.kinds)}")
        self._check_exists(volume)
        return Attachment(index=volume.index, kind="datastore", address=volume.location,
                          format="vmdk", readonly=volume.readonly, boot=request.boot,
                          lun=request.lun, details={"datastore": self.datastore})

    def detach(self, volume: Volume, machine: Machine) -> None:
        """Nothing to undo: the platform takes the disk out of the VM."""

    # -- delete, discover, cleanup -------------------------------------------------------------
    def delete_volume(self, volume: Volume) -> None:
        path = self._path_of(volume)
        if self.files.exists(path) or self.files.exists(vmdk.flat_name(path)):
            self._delete_disk(path)
        self._delete_file(posixpath.splitext(path)[0] + READONLY)

    def _delete_disk(self, path: str) -> None:
        manager = self.session.content.virtualDiskManager
        self.files  # noqa: B018 - finds the datacenter
        action = f"delete {self._location(path)}"
        with self._gone_is_fine():
            tasks.run(self.session, action, lambda: manager.DeleteVirtualDisk_Task(
                name=self._location(path), datacenter=self._datacenter))

    def _delete_file(self, path: str) -> None:
        manager = self.session.content.fileManager
        self.files  # noqa: B018 - finds the datacenter
        with self._gone_is_fine():
            tasks.run(self.session, f"delete {self._location(path)}",
                      lambda: manager.DeleteDatastoreFile_Task(name=self._location(path),
                                                               datacenter=self._datacenter))

    @contextlib.contextmanager
    def _gone_is_fine(self) -> Iterator[None]:
        try:
            yield
        except NotFound:
            pass
        except DriverError as exc:
            if "not found" not in str(exc).lower() and "FileNotFound" not in str(exc):
                raise

    def _listing(self, folder: str) -> list[tuple[str, str, int]]:
        """``(folder, file name, size)`` of every file under ``folder`` of the datastore."""
        vim, _ = pyvmomi()
        inventory = self.collector.read(("Datastore",))
        datastore = inventory.named("Datastore", self.datastore)
        if datastore is None:
            raise NotFound(f"pool '{self.pool}': {self.session.where} has no datastore "
                           f"'{self.datastore}'")
        browser = self.session.call("find the datastore browser", lambda: datastore.ref.browser)
        spec = vim.host.DatastoreBrowser.SearchSpec(
            matchPattern=["*"], details=vim.host.DatastoreBrowser.FileInfo.Details(fileSize=True))
        root = self._location(folder)
        try:
            results = tasks.run(self.session, f"list {root}",
                                lambda: browser.SearchDatastoreSubFolders_Task(root, spec))
        except DriverError as exc:
            if "not found" in str(exc).lower() or "FileNotFound" in str(exc):
                return []
            raise
        prefix = f"[{self.datastore}] "
        found = []
        for result in results or ():
            where = result.folderPath.removeprefix(prefix).strip("/")
            for file in result.file or ():
                found.append((where, file.path, int(file.fileSize or 0)))
        return found

    def discover(self) -> list[DiscoveredVolume]:
        """Every complete volume (a descriptor) in the pool's folder."""
        listing = self._listing(self.folder)
        names = {(where, name) for where, name, _ in listing}
        sizes = {(where, name): size for where, name, size in listing}
        found = []
        for where, name, _ in sorted(listing):
            image = posixpath.basename(where)
            stem = name.removesuffix(".vmdk")
            if posixpath.dirname(where) != self.folder or not name.endswith(".vmdk") or \
                    name.endswith("-flat.vmdk") or not stem.startswith("vol") or not stem[3:].isdigit():
                continue
            size = sizes.get((where, vmdk.flat_name(name)), 0)
            readonly = (where, stem + READONLY) in names
            volume = self._volume(int(stem[3:]), f"{where}/{name}", size, readonly)
            found.append(DiscoveredVolume(image, volume))
        return found

    def cleanup(self, image: str) -> list[str]:
        """Remove flat extents without a descriptor (uploads a killed process left)."""
        listing = self._listing(f"{self.folder}/{image}")
        names = {name for _, name, _ in listing}
        removed = []
        for where, name, _ in listing:
            if name.endswith("-flat.vmdk") and name.replace("-flat.vmdk", ".vmdk") not in names:
                self._delete_file(f"{where}/{name}")
                removed.append(f"removed {self._location(f'{where}/{name}')} (a partial upload)")
        return removed

    def flatten_volume(self, volume: Volume) -> Volume:
        raise NotSupported(f"pool '{self.pool}' makes no copy-on-write volumes")

    def close(self) -> None:
        self.session.close()


