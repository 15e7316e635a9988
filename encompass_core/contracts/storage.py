"""What the core expects of a storage driver: one configured pool.

A driver derives from :class:`StorageDriver` and is built by its record's
``factory(section, config)``. Required methods raise :class:`NotImplementedError` here; the
optional ones have defaults that say what the core does when a driver leaves them out. The
conformance suite (:mod:`encompass_core.testing`) gives each method its meaning.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import attrs

from ..errors import NotSupported
from ..model import Machine, StorageJob, Volume
from .values import (
    Attachment,
    AttachRequest,
    CloneProgress,
    DiscoveredVolume,
    JobStatus,
    Progress,
    StorageCapabilities,
    missing,
)

if TYPE_CHECKING:
    from ..customization.access import VolumeRef
    from ..records import CloneRequest
    from .streams import VolumeReader


class StorageDriver:
    """One pool's driver: where volumes live, how they are cloned, reached and attached."""

    #: The pool's name (its ``[pools.NAME]`` table).
    pool: str
    #: What this driver makes and offers.
    capabilities: ClassVar[StorageCapabilities] = StorageCapabilities(formats=())
    #: Clones made in this pool at once, at the most.
    concurrency: int = 4

    # -- required ----------------------------------------------------------------------------
    def import_volume(self, image: str, index: int, source: Path,
                      progress: Progress | None = None) -> Volume:
        """Copy a file or directory tree of the utility server into the pool as volume
        ``index`` of ``image``. A volume already there is a :class:`~..errors.Conflict`."""
        raise missing(self, "import_volume")

    def clone_volume(self, source: Volume, source_driver: StorageDriver, request: CloneRequest,
                     progress: CloneProgress) -> Volume | None:
        """Clone ``source`` (of this pool or of ``source_driver``'s) natively, or return None
        when this pool has no native way for it: the core then copies it through
        :meth:`expose` and :meth:`write_volume` (full clones only).

        A copy the storage system runs as a job of its own (a VolumeCopy, a vSphere task) is
        announced with ``progress.started_job`` before it is waited for.
        """
        raise missing(self, "clone_volume")

    def delete_volume(self, volume: Volume) -> None:
        """Remove the volume; a volume already gone is not an error. A pool that refuses (or
        cannot be reached) raises :class:`~encompass_core.errors.DriverError` saying why; the
        volume stays recorded, and ``encompass repair`` asks again."""
        raise missing(self, "delete_volume")

    @contextlib.contextmanager
    def expose(self, volume: Volume, writable: bool) -> Iterator[VolumeRef]:
        """Make the volume reachable on the utility server for the ``with`` block (map a LUN
        to the utility host, open an export, download a disk) and release it afterwards
        (unmap, close, upload what changed when ``writable``)."""
        raise missing(self, "expose")
        yield  # pragma: no cover - makes this a generator

    def write_volume(self, image: str, index: int, source: VolumeRef, size: int,
                     progress: Progress | None = None) -> Volume:
        """Create volume ``index`` of ``image`` from a volume exposed on the utility server
        (the core's copy across pools when no native clone answers)."""
        raise missing(self, "write_volume")

    def attach(self, volume: Volume, machine: Machine, request: AttachRequest) -> Attachment:
        """Make the volume reachable by ``machine`` (map the LUN to its host ports, export the
        path to its addresses), as one of ``request.kinds``; say how the machine sees it."""
        raise missing(self, "attach")

    def detach(self, volume: Volume, machine: Machine) -> None:
        """Undo :meth:`attach`; a volume not attached is not an error."""
        raise missing(self, "detach")

    def discover(self) -> list[DiscoveredVolume]:
        """The volumes the pool really holds."""
        raise missing(self, "discover")

    # -- optional ----------------------------------------------------------------------------
    def inspect_source(self, source: Path) -> None:
        """Refuse, before anything is recorded, a source this pool cannot import."""

    def flatten_volume(self, volume: Volume) -> Volume:
        """Make a copy-on-write volume independent of what it reads through."""
        raise NotSupported(f"pool '{self.pool}' cannot make a volume independent of its parent")

    def seal_volume(self, volume: Volume) -> Volume:
        """Make a volume read-only: it has become a master's (a new master version made from
        a clone). By default only the record says so; a pool that can enforce it does."""
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
        return []

    def close(self) -> None:
        """Release what the driver holds (sessions, connections); called once at the end."""
