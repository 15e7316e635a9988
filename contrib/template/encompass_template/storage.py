"""The storage driver of encompass-template: one pool on an array (here the fake one).

Every method of :class:`~encompass_core.contracts.StorageDriver` is here with the contract's
docstring; the bodies drive :mod:`.fake_array`. To make the driver yours, replace
``FakeArray`` by your array's client and keep the behaviour the conformance suite checks
(``tests/test_template_storage.py``).
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

from encompass_core.contracts import (
    Attachment,
    AttachRequest,
    CloneProgress,
    DiscoveredVolume,
    JobStatus,
    Progress,
    StorageCapabilities,
    StorageDriver,
    VolumeReader,
)
from encompass_core.customization.access import VolumeRef
from encompass_core.errors import Conflict, DriverError, NotFound, NotSupported
from encompass_core.model import Machine, StorageJob, Volume
from encompass_core.records import CloneRequest

from .fake_array import ArrayUnreachable, FakeArray, NoSuchLun

#: The initiator this utility server maps LUNs to while it exposes them.
UTILITY_INITIATOR = "iqn.2024-01.org.encompass:utility"


class TemplateStorageDriver(StorageDriver):
    """A pool of LUNs on one array, reached by machines over iSCSI."""

    capabilities = StorageCapabilities(formats=("raw",), clone_modes=("full",),
                                       attach_kinds=("iscsi",), imports=True, long_jobs=False)

    def __init__(self, section: Any, config: Any) -> None:
        self.pool = section.name
        # Settings are declared on the record (plugin.py) and checked by the core before this.
        self.array = FakeArray(section.settings["array"])

    @contextlib.contextmanager
    def _asking(self, what: str) -> Iterator[None]:
        """Turn the array client's errors into the core's, naming this pool."""
        try:
            yield
        except ArrayUnreachable as exc:
            raise DriverError(f"pool '{self.pool}': cannot {what}: {exc}; is the array up?") from None
        except NoSuchLun as exc:
            raise NotFound(f"pool '{self.pool}' has no volume {exc} (cannot {what})") from None
        except FileExistsError as exc:  # the array's answer to a name in use
            raise Conflict(f"pool '{self.pool}' already holds volume {exc}") from None

    @staticmethod
    def _lun_name(image: str, index: int) -> str:
        return f"{image}.{index}"

    def _made(self, name: str, lun: dict[str, Any], progress: Progress | None) -> Volume:
        """The volume just made, its bytes reported done."""
        if progress is not None:
            progress(lun["size"])
        return self._volume(name, lun)

    def _volume(self, name: str, lun: dict[str, Any]) -> Volume:
        return Volume(index=lun["index"], pool=self.pool, format="raw", location=name,
                      size=lun["size"], readonly=lun["readonly"])

    # -- required ----------------------------------------------------------------------------
    def import_volume(self, image: str, index: int, source: Path,
                      progress: Progress | None = None) -> Volume:
        """Copy a file or directory tree of the utility server into the pool as volume
        ``index`` of ``image``. A volume already there is a :class:`~..errors.Conflict`."""
        name = self._lun_name(image, index)
        self.inspect_source(source)
        with self._asking(f"import {source}"):
            lun = self.array.create_lun(name, source, image, index, readonly=True)
        return self._made(name, lun, progress)

    def clone_volume(self, source: Volume, source_driver: StorageDriver, request: CloneRequest,
                     progress: CloneProgress) -> Volume | None:
        """Clone ``source`` (of this pool or of ``source_driver``'s) natively, or return None
        when this pool has no native way for it: the core then copies it through
        :meth:`expose` and :meth:`write_volume` (full clones only).

        A copy the storage system runs as a job of its own (a VolumeCopy, a vSphere task) is
        announced with ``progress.started_job`` before it is waited for.
        """
        if request.mode not in self.capabilities.clone_modes or source.pool != self.pool:
            return None
        name = self._lun_name(request.image, request.index)
        with self._asking(f"clone {source.location}"):
            lun = self.array.copy_lun(source.location, name, request.image, request.index)
        progress.advance(lun["size"])
        return self._volume(name, lun)

    def delete_volume(self, volume: Volume) -> None:
        """Remove the volume; a volume already gone is not an error. A pool that refuses (or
        cannot be reached) raises :class:`~encompass_core.errors.DriverError` saying why; the
        volume stays recorded, and ``encompass repair`` asks again."""
        with contextlib.suppress(NotFound), self._asking(f"delete {volume.location}"):
            self.array.delete_lun(volume.location)

    @contextlib.contextmanager
    def expose(self, volume: Volume, writable: bool) -> Iterator[VolumeRef]:
        """Make the volume reachable on the utility server for the ``with`` block (map a LUN
        to the utility host, open an export, download a disk) and release it afterwards
        (unmap, close, upload what changed when ``writable``)."""
        with self._asking(f"expose {volume.location}"):
            lun = self.array.luns().get(volume.location)
            if lun is None:
                raise NoSuchLun(volume.location)
            if writable and lun["readonly"]:
                raise Conflict(f"pool '{self.pool}': volume {volume.location} is a master's, "
                               "read-only; clone it to change it")
            self.array.map_lun(volume.location, UTILITY_INITIATOR)
        try:
            yield VolumeRef(path=str(self.array.device(volume.location)), format="raw")
        finally:
            with contextlib.suppress(NotFound), self._asking(f"release {volume.location}"):
                self.array.unmap_lun(volume.location, UTILITY_INITIATOR)

    def write_volume(self, image: str, index: int, source: VolumeRef, size: int,
                     progress: Progress | None = None) -> Volume:
        """Create volume ``index`` of ``image`` from a volume exposed on the utility server
        (the core's copy across pools when no native clone answers)."""
        name = self._lun_name(image, index)
        with tempfile.TemporaryDirectory(prefix="encompass-template-") as scratch:
            raw = Path(scratch) / "volume.raw"
            if source.format == "raw" and "://" not in source.path:
                raw = Path(source.path)
            else:  # qcow2 chains, iscsi:// or nfs:// URLs: QEMU reads them
                done = subprocess.run(["qemu-img", "convert", "-O", "raw", "-f", source.format,
                                       source.path, str(raw)], capture_output=True, text=True)
                if done.returncode != 0:
                    raise DriverError(f"pool '{self.pool}': cannot read {source.path}: "
                                      f"{done.stderr.strip()}")
            with self._asking(f"write {name}"):
                lun = self.array.create_lun(name, raw, image, index, readonly=False)
        return self._made(name, lun, progress)

    def attach(self, volume: Volume, machine: Machine, request: AttachRequest) -> Attachment:
        """Make the volume reachable by ``machine`` (map the LUN to its host ports, export the
        path to its addresses), as one of ``request.kinds``; say how the machine sees it."""
        if "iscsi" not in request.kinds:
            raise NotSupported(f"pool '{self.pool}' offers iscsi volumes only, not "
                               f"{', '.join(request.kinds)}")
        initiators = [port.address for port in machine.host_ports if port.kind == "iscsi"]
        if not initiators:
            raise NotSupported(f"pool '{self.pool}': machine '{machine.name}' has no iSCSI "
                               "initiator name (host_ports) to map the volume to")
        with self._asking(f"attach {volume.location} to {machine.name}"):
            for initiator in initiators:
                self.array.map_lun(volume.location, initiator)
        return Attachment(index=volume.index, kind="iscsi",
                          address=f"{self.array.portal()}/{volume.location}", format=volume.format,
                          readonly=volume.readonly, boot=request.boot, lun=request.lun,
                          details={"initiators": initiators})

    def detach(self, volume: Volume, machine: Machine) -> None:
        """Undo :meth:`attach`; a volume not attached is not an error."""
        with contextlib.suppress(NotFound), self._asking(f"detach {volume.location}"):
            for port in machine.host_ports:
                self.array.unmap_lun(volume.location, port.address)

    def discover(self) -> list[DiscoveredVolume]:
        """The volumes the pool really holds."""
        with self._asking("list its volumes"):
            luns = self.array.luns()
        return [DiscoveredVolume(image=lun["image"], volume=self._volume(name, lun))
                for name, lun in sorted(luns.items())]

    # -- optional ----------------------------------------------------------------------------
    def inspect_source(self, source: Path) -> None:
        """Refuse, before anything is recorded, a source this pool cannot import."""
        if not Path(source).is_file():
            raise NotSupported(f"pool '{self.pool}' imports raw disk image files; {source} is not one")

    def flatten_volume(self, volume: Volume) -> Volume:
        """Make a copy-on-write volume independent of what it reads through."""
        raise NotSupported(f"pool '{self.pool}' cannot make a volume independent of its parent")

    def seal_volume(self, volume: Volume) -> Volume:
        """Make a volume read-only: it has become a master's (a new master version made from
        a clone). By default only the record says so; a pool that can enforce it does."""
        # An array that can make a LUN read-only does it here as well.
        return attrs.evolve(volume, readonly=True)

    def job_status(self, job: StorageJob) -> JobStatus:
        """Where a long job started by :meth:`clone_volume` stands (for ``encompass repair``)."""
        raise NotSupported(f"pool '{self.pool}' runs no long jobs")

    def cancel_job(self, job: StorageJob) -> None:
        """Stop a long job and remove what it made so far."""
        raise NotSupported(f"pool '{self.pool}' runs no long jobs")

    def open_reader(self, volume: Volume) -> contextlib.AbstractContextManager[VolumeReader] | None:
        """A context giving the volume's bytes read directly (:class:`.streams.VolumeReader`),
        for the core's copy into a pool that takes streams (:meth:`write_stream`); None (the
        default) when the pool has no better way than :meth:`expose`, or the bytes alone would
        not be the volume (a copy-on-write file reading through another). Asking is cheap (a look
        at the volume at most): the reader opens when the context is entered, and the core may
        enter it and not use it (when the target takes no stream)."""
        # An array whose LUNs a client library reads faster than through expose() returns a
        # context giving a VolumeReader here; this one has nothing better.
        return None

    def write_stream(self, image: str, index: int, reader: VolumeReader, size: int,
                     progress: Progress | None = None) -> Volume | None:
        """Create volume ``index`` of ``image`` (a disk of ``size`` bytes) from ``reader``
        (another pool's :meth:`open_reader`): a file of ``reader.format`` with its bytes, zeros
        left as holes, ``progress`` called as they go; or None (the default) when this pool does
        not take such a stream, and the core copies through :meth:`expose` and
        :meth:`write_volume` instead.
        A failed copy leaves nothing behind, as :meth:`write_volume`'s."""
        return None

    def cleanup(self, image: str) -> list[str]:
        """Remove what a killed operation on ``image`` left in this pool (half-written volumes,
        mappings to the utility server); return one line per thing removed."""
        removed = []
        with self._asking(f"clean up after {image}"):
            for name, lun in self.array.luns().items():
                if lun["image"] == image and UTILITY_INITIATOR in lun["mapped"]:
                    self.array.unmap_lun(name, UTILITY_INITIATOR)
                    removed.append(f"unmapped {name} from the utility server")
        return removed

    def close(self) -> None:
        """Release what the driver holds (sessions, connections); called once at the end."""
