"""The values storage and platform drivers exchange with the core (frozen attrs records)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from ..customization.platform_keys import PLATFORM_CUSTOMIZATION_KEYS  # noqa: F401 - re-exported
from ..errors import PluginError
from ..model import Volume

#: Called with the bytes done since the last call.
Progress = Callable[[int], None]

#: How a machine can reach a volume. A pool says which it offers, a platform which it accepts;
#: the core picks one both know before it touches anything.
ATTACH_KINDS = (
    "file",  # a disk image file the hypervisor opens on its host (local pool, a mounted share)
    "dir",  # a directory tree (a container root, virtiofs, an NFS root)
    "nfs",  # a file or tree on an NFS export: server, export, path
    "iscsi",  # a LUN of an iSCSI target: portal, target IQN, LUN; mapped to the machine's initiator
    "fc",  # a LUN behind Fibre Channel, mapped to the machine's WWPNs
    "datastore",  # a VMDK on a vSphere datastore: "[datastore] folder/disk.vmdk"
)

#: How a machine can start the image. ``kernel``: the platform loads the kernel read out of the
#: image (direct kernel boot); ``disk``: firmware boots the first disk; ``san``: firmware boots
#: LUN 0 (boot from SAN); ``pxe``: network boot; ``nfsroot``: a kernel mounts its root over NFS;
#: ``media``: firmware boots the (virtual) CD drive, such as a BMC's virtual media.
BOOT_MODES = ("kernel", "disk", "san", "pxe", "nfsroot", "media")


@attrs.frozen
class AttachRequest:
    """What the core asks of a pool when a volume is attached to a machine.

    ``kinds``: the attachment kinds the machine's platform accepts, preferred first; the pool
    answers with one of them. ``boot``: the machine boots from this volume. ``lun``: where the
    machine sees it (the boot volume at 0), for pools that map LUNs.
    """

    kinds: tuple[str, ...]
    boot: bool = False
    lun: int | None = None


@attrs.frozen
class Attachment:
    """How a machine sees an attached volume (what a platform driver puts in its definition).

    ``address`` is the kind's own address: a path (``file``, ``dir``), ``server:/export/path``
    (``nfs``), ``iscsi://portal/iqn/lun`` (``iscsi``), a WWN (``fc``), ``[ds] path.vmdk``
    (``datastore``). ``details`` holds what else the platform needs (an initiator name...).
    """

    index: int
    kind: str
    address: str
    format: str = "raw"
    readonly: bool = False
    boot: bool = False
    lun: int | None = None
    details: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class DiscoveredVolume:
    """A volume a pool really holds, with the image it seems to belong to.

    ``volume.location`` is the same address the pool gave the volume when it made it (what the
    store records), so ``encompass discover`` matches the two by location; a pool whose volumes
    have a world-wide name keeps it in ``volume.data["wwn"]`` (:attr:`Volume.wwn`), which
    matches a volume whose label changed. ``backing`` is the location of the volume a
    copy-on-write volume reads through, as this pool names locations (compared with the
    lineage the store records); None for an independent volume.
    """

    image: str | None
    volume: Volume
    backing: str | None = None


@attrs.frozen
class StorageCapabilities:
    """What a pool makes and offers; the core checks requests against it before acting.

    ``formats``: the volume formats it makes (``raw``, ``qcow2``, ``dir``, ``vmdk``, ``lun``...);
    ``clone_modes``: what it clones natively (``cow``, ``full``), from its own volumes;
    ``attach_kinds``: how machines reach its volumes (:data:`ATTACH_KINDS`);
    ``imports``: whether files of the utility server can be imported into it;
    ``long_jobs``: whether a clone may run on as a job of the storage system (VolumeCopy).
    """

    formats: tuple[str, ...]
    clone_modes: tuple[str, ...] = ()
    attach_kinds: tuple[str, ...] = ()
    imports: bool = True
    long_jobs: bool = False




@attrs.frozen
class PlatformCapabilities:
    """What a platform accepts and can do; the core refuses a request before touching anything.

    ``kind``: ``virtual`` or ``physical``; ``attach_kinds``: the attachments its machines take;
    ``boot_modes``: how they start (:data:`BOOT_MODES`); ``create_machines``: it creates and
    destroys machines; ``boot_device``: ``once`` and/or ``persistent`` boot device settings;
    ``migrate``, ``reconfigure`` (CPUs, memory), ``customize`` (a platform-side customization,
    such as a vSphere customization spec).
    """

    kind: str = "virtual"
    attach_kinds: tuple[str, ...] = ()
    boot_modes: tuple[str, ...] = ()
    create_machines: bool = False
    boot_device: tuple[str, ...] = ()
    migrate: bool = False
    reconfigure: bool = False
    customize: bool = False


@attrs.frozen
class JobStatus:
    """Where a long storage-side job stands: ``running``, ``done`` or ``failed``."""

    state: str
    percent: float | None = None
    message: str = ""


class CloneProgress:
    """What a driver reports while it clones: bytes done, and long jobs it started.

    A job is recorded on the image at once (``started_job``), so ``encompass repair`` finds it
    if this process dies; the driver then waits for it, calling ``advance`` as it goes.
    """

    def __init__(self, advance: Progress | None = None,
                 on_job: Callable[[str, str], None] | None = None) -> None:
        self._advance = advance
        self._on_job = on_job

    def advance(self, done: int) -> None:
        """``done`` more bytes are copied."""
        if self._advance is not None:
            self._advance(done)

    def started_job(self, job_id: str, description: str) -> None:
        """The storage system runs the copy as job ``job_id``; the core records it."""
        if self._on_job is not None:
            self._on_job(job_id, description)


def missing(driver: object, method: str) -> PluginError:
    """The error for a required method a driver does not implement (a plugin's bug, exit 6)."""
    name = getattr(driver, "pool", None) or getattr(driver, "platform", "?")
    return PluginError(f"driver {type(driver).__name__} ('{name}') does not implement {method}(), "
                       "which the contract requires; update its plugin")
