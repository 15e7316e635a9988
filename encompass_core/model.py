"""The data model: frozen attrs values, changed with :func:`attrs.evolve`.

Documents in the store are converted to and from these classes only through
``from_document`` / ``to_document`` (see :mod:`encompass_core.store`), never ``Model(**doc)``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

import attrs

from .convert import ONE_OF, REQUIRED, tuple_of
from .errors import InvalidInput
from .lifecycle import STATES

ImageKind = Literal["master", "clone"]
#: Volume formats the core itself knows; pools may make others (``vmdk``, ``lun``...): a format
#: is an open name, and one the core has never heard of is kept, never fatal.
KNOWN_FORMATS = ("raw", "qcow2", "dir")

_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def validate_name(name: str, what: str = "image") -> str:
    """Return ``name`` if it is a valid DNS-label-like name, else raise :class:`InvalidInput`."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise InvalidInput(
            f"invalid {what} name {name!r}: use 1-63 lowercase letters, digits and hyphens, "
            "starting and ending with a letter or digit (like a DNS label), e.g. 'web01'"
        )
    return name


def now() -> str:
    """The current time as an ISO 8601 UTC string (what every timestamp in metadata is)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _frozen_map(value: Mapping[str, Any] | None) -> dict[str, Any]:
    return dict(value or {})


@attrs.frozen
class HardwareProfile:
    """What a machine must offer to run an image (memory, CPUs, architecture, firmware)."""

    memory_mib: int = 512
    cpus: int = 1
    arch: str = "x86_64"
    firmware: str = "bios"  # bios | uefi
    platforms: tuple[str, ...] = ()  # allowed platform kinds (kvm, xen, esx, blade...); () = any
    extra: dict[str, Any] = attrs.field(factory=dict, converter=_frozen_map)


@attrs.frozen
class SoftwareProfile:
    """What the image's software stack is (free-form, for people and for matching)."""

    os: str = ""
    version: str = ""
    description: str = ""
    extra: dict[str, Any] = attrs.field(factory=dict, converter=_frozen_map)


@attrs.frozen
class Volume:
    """One disk volume of an image, as its storage pool keeps it.

    ``location`` is the pool's own address for it, for people (a path for the local pool, a
    logical drive's name, ``[datastore] path.vmdk``); ``data`` is what else the pool's driver
    keeps about it (a WWN, a FlashCopy repository, a datastore and its datacenter), stored and
    read back as given. ``format`` is an open name (:data:`KNOWN_FORMATS` and whatever pools
    make). ``backing`` names the image and volume index this one is a copy-on-write overlay of,
    and ``depth`` counts the overlays below it (0 for an independent volume).
    """

    index: int
    pool: str
    format: str
    location: str
    size: int = 0  # virtual size in bytes (0 for directory trees)
    backing: tuple[str, int] | None = attrs.field(
        default=None, converter=lambda v: tuple(v) if v else None
    )
    depth: int = 0
    readonly: bool = False
    data: dict[str, Any] = attrs.field(factory=dict, converter=_frozen_map)
    missing: str | None = None  # when ``encompass discover --apply`` last did not find it

    @property
    def wwn(self) -> str | None:
        """The volume's world-wide name when its pool gives one (a SAN LUN's): an identity
        that stays with the volume when its label or location changes."""
        value = self.data.get("wwn")
        return str(value) if value else None


@attrs.frozen
class StorageJob:
    """A long copy a storage system runs on its own (a VolumeCopy, a vSphere task), recorded on
    the image as soon as it starts so that ``encompass repair`` finds it after a crash."""

    pool: str
    index: int  # the volume being made
    id: str  # the storage system's own name for the job
    description: str = ""
    started: str = attrs.field(factory=lambda: now())


@attrs.frozen
class HostPort:
    """A port through which a machine reaches storage: ``fc`` (a WWPN, 16 hex digits) or
    ``iscsi`` (an initiator name, ``iqn.…``). SANs map LUNs to these; NAS exports to addresses."""

    kind: Literal["fc", "iscsi"]
    address: str


@attrs.frozen
class CustomizationItem:
    """One step of a master's customization: where, how (type), and what un-customizes it.

    ``optional``: a missing target (no file, no match) is skipped instead of being an error.
    ``platform_key``: what the value is to a platform that customizes guests itself (one of
    :data:`~encompass_core.contracts.PLATFORM_CUSTOMIZATION_KEYS`: ``hostname``, ``ip``...); a
    clone whose items all have one is customized by the platform it is deployed on, when that
    platform can (see :mod:`encompass_core.operations.platform_items`).
    """

    key: str
    type: str
    path: str
    volume: int = 0
    partition: int | None = None
    description: str = ""
    prompt: str = ""
    default: str | None = None
    secret: bool = False
    params: dict[str, Any] = attrs.field(factory=dict, converter=_frozen_map)
    optional: bool = False
    platform_key: str | None = None


@attrs.frozen
class MasterVersion:
    """An earlier version of a master, kept (with its read-only volumes) while clones derive
    from it; the current version is the master's own ``version`` and ``volumes``."""

    number: int
    volumes: tuple[Volume, ...] = attrs.field(default=(), converter=tuple_of)
    created: str = attrs.field(factory=now)
    note: str = ""  # where it came from: "imported", "from clone 'web01'", ...


@attrs.frozen
class RebaseBackup:
    """What a rebase replaced on a clone, kept for ``encompass rebase --rollback`` until
    ``--discard-old``: the volumes, the master version, and the customization records."""

    master_version: int | None
    volumes: tuple[Volume, ...] = attrs.field(default=(), converter=tuple_of)
    applied: dict[str, Any] = attrs.field(factory=dict, converter=_frozen_map)
    inputs: dict[str, Any] = attrs.field(factory=dict, converter=_frozen_map)
    time: str = attrs.field(factory=now)


@attrs.frozen
class Owner:
    """The process holding an image in a transitional state (the image's lock)."""

    pid: int
    host: str
    started: float  # the process start time, to tell a reused pid from the owner
    operation: str
    since: str
    previous_state: str


@attrs.frozen
class Image:
    """A master (``kind='master'``, with a ``version``) or a clone of a master or of a clone.

    Clones record their ``master``, the ``parent`` they were cloned from (the master or another
    clone) and the ``master_version`` they derive from, so baselining can follow the lineage.
    A master keeps its earlier ``versions`` (while clones derive from them) and says which of
    its volumes hold the functionality's data (``data_volumes``: carried over untouched when a
    clone is rebased onto another version). ``previous`` is what a clone's last rebase replaced;
    ``making`` the storage name under which the operation holding the image makes new volumes
    (what ``encompass repair`` removes when that operation died). ``removing`` lists the volumes
    the operation holding the image is removing (a rollback's rebased volumes, a retired version's):
    recorded before the first is deleted, so a killed process leaves no file that no record owns,
    and ``encompass repair`` finishes the removal. ``redeploy_on`` names the machine a deployed
    clone is deployed on again once its rebase (or rollback) ends, and ``redeploy_by`` the
    process that undeployed it to that end: set before the undeploy and cleared by the deploy,
    so that repair deploys it again when that process died at any point between the two, held
    or not.
    """

    name: str
    kind: ImageKind
    state: str = attrs.field(metadata={ONE_OF: STATES})  # a stored image is in a real state
    # Empty while importing, but always written: a document without it is damaged.
    volumes: tuple[Volume, ...] = attrs.field(default=(), converter=tuple_of, metadata={REQUIRED: True})
    version: int | None = None  # masters only
    master: str | None = None  # clones only
    parent: str | None = None  # clones only
    master_version: int | None = None  # clones only
    hardware: HardwareProfile = attrs.field(factory=HardwareProfile)
    software: SoftwareProfile = attrs.field(factory=SoftwareProfile)
    items: tuple[CustomizationItem, ...] = attrs.field(default=(), converter=tuple_of)
    inputs: dict[str, Any] = attrs.field(factory=dict, converter=_frozen_map)
    applied: dict[str, Any] = attrs.field(factory=dict, converter=_frozen_map)
    machine: str | None = None
    versions: tuple[MasterVersion, ...] = attrs.field(default=(), converter=tuple_of)  # masters only
    data_volumes: tuple[int, ...] = attrs.field(default=(), converter=tuple_of)  # masters only
    previous: RebaseBackup | None = None  # clones only
    making: str | None = None
    removing: tuple[Volume, ...] = attrs.field(default=(), converter=tuple_of)
    redeploy_on: str | None = None  # clones only
    redeploy_by: Owner | None = None  # clones only
    owner: Owner | None = None
    jobs: tuple[StorageJob, ...] = attrs.field(default=(), converter=tuple_of)
    error: str | None = None
    created: str = attrs.field(factory=now)
    updated: str = attrs.field(factory=now)

    @property
    def is_master(self) -> bool:
        return self.kind == "master"

    @property
    def reading_volumes(self) -> tuple[Volume, ...]:
        """The volumes that may read through another image's: its own and those its last
        rebase keeps for a rollback (what keeps that other image from being deleted)."""
        return self.volumes + (self.previous.volumes if self.previous else ())

    def at_version(self, number: int | None) -> Image:
        """This master as it was at version ``number`` (its volumes then); itself when ``number``
        is None, the current version, or one no longer kept."""
        if number is None or number == self.version:
            return self
        for kept in self.versions:
            if kept.number == number:
                return attrs.evolve(self, version=number, volumes=kept.volumes)
        return self

    def version_numbers(self) -> list[int]:
        """The versions of this master still kept, oldest first (the current one last)."""
        return sorted([v.number for v in self.versions] + ([self.version] if self.version else []))


@attrs.frozen
class ImageSummary:
    """What a listing shows of an image (``image list``): its name, kind, state, lineage and
    the totals of its volumes, without its profiles, items or volumes' details. The store
    answers these (:meth:`~encompass_core.store.protocol.Transaction.summaries`) without
    building whole :class:`Image` records, which a listing of thousands would pay for."""

    name: str
    kind: ImageKind
    state: str
    version: int | None = None
    master: str | None = None
    parent: str | None = None
    master_version: int | None = None
    machine: str | None = None
    error: str | None = None
    pools: tuple[str, ...] = ()  # the pools of its volumes, sorted, each once
    volumes: int = 0  # how many volumes it has
    size: int = 0  # their virtual sizes, summed

    @property
    def is_master(self) -> bool:
        return self.kind == "master"

    @classmethod
    def of(cls, image: Image) -> ImageSummary:
        """The summary of a whole image record."""
        return cls(image.name, image.kind, image.state, image.version, image.master, image.parent,
                   image.master_version, image.machine, image.error,
                   tuple(sorted({v.pool for v in image.volumes})), len(image.volumes),
                   sum(v.size for v in image.volumes))


@attrs.frozen
class Machine:
    """A physical or virtual machine a platform offers, and the image deployed on it.

    ``uuid``, ``serial`` and ``macs`` are its identity, which ``encompass discover`` matches by
    (a name can change); ``missing`` is when discovery last asked its platform and did not
    find it (the record is kept, never silently deleted).
    """

    name: str
    platform: str
    kind: Literal["physical", "virtual"] = "virtual"
    uuid: str | None = None
    serial: str | None = None  # a physical machine's serial number (or a VM's BIOS serial)
    hardware: HardwareProfile = attrs.field(factory=HardwareProfile)
    power: str = "unknown"  # on | off | unknown
    macs: tuple[str, ...] = attrs.field(default=(), converter=tuple_of)
    host_ports: tuple[HostPort, ...] = attrs.field(default=(), converter=tuple_of)
    addresses: tuple[str, ...] = attrs.field(default=(), converter=tuple_of)  # IP addresses
    disks: tuple[str, ...] = attrs.field(default=(), converter=tuple_of)
    image: str | None = None
    extra: dict[str, Any] = attrs.field(factory=dict, converter=_frozen_map)
    discovered: str | None = None
    missing: str | None = None


@attrs.frozen
class Event:
    """One entry of an image's history: a state change or an operation's result."""

    image: str
    kind: Literal["transition", "operation", "repair"]
    message: str
    operation: str | None = None
    from_state: str | None = None
    to_state: str | None = None
    pid: int | None = None
    time: str = attrs.field(factory=now)
    details: dict[str, Any] = attrs.field(factory=dict, converter=_frozen_map)
