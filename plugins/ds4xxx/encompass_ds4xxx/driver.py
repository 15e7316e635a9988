"""The ``ds4xxx`` storage driver: a pool is one array of an IBM DS4000-series subsystem.

Volumes are logical drives (:mod:`.labels` says how they are named), holding raw disks. Native
clones: ``cow`` is a FlashCopy logical drive of a standard one (DS4000 FlashCopies are
read-write); ``full`` is a VolumeCopy into a new logical drive, a job of the subsystem whose
progress the driver polls and which ``encompass repair`` can find. Machines reach volumes over
iSCSI: attach maps the logical drive to the machine's host (found by its initiator names, made
when missing) at a LUN; expose maps it to the utility server's own host for the operation.

Everything the driver does to the subsystem goes through SMcli (:mod:`.smcli`); what it reads
comes from the subsystem's profile (:mod:`.profile`), read fresh for each operation but a
FlashCopy, which is one SMcli call (the profile is read only to explain a refusal).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from encompass_core.config import Config, Section, secret
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
from encompass_core.drivers.local import inspect_file
from encompass_core.errors import Conflict, DriverError, EncompassError, InvalidInput, NotFound, NotSupported
from encompass_core.model import Machine, StorageJob, Volume
from encompass_core.records import CloneRequest

from . import copies, labels, lunaccess
from .hosts import HostMaker
from .profile import Drive, Profile, parse_profile
from .settings import value
from .smcli import Smcli, SmcliError, quote

FORMAT = "raw"  # a LUN holds a raw disk


class UtilityMapping:
    """A logical drive mapped to the utility host: its address, the commands to run with the
    unmapping (``after``) and that call's output."""

    def __init__(self, address: lunaccess.LunAddress) -> None:
        self.address = address
        self.after: list[str] = []
        self.output = ""


class Ds4xxxStorageDriver(StorageDriver):
    """A pool in one array of a DS4000-series subsystem, driven through SMcli."""

    capabilities = StorageCapabilities(formats=(FORMAT,), clone_modes=("cow", "full"),
                                       attach_kinds=("iscsi",), long_jobs=True)

    def __init__(self, section: Section, config: Config) -> None:
        settings = section.settings
        self.pool = section.name
        self.array = str(value(settings, "array"))
        self.smcli = Smcli(self.pool, value(settings, "smcli"), value(settings, "controllers"),
                           lambda: secret(section, "password", config), float(value(settings, "timeout")))
        self.utility_host = value(settings, "utility_host")
        self.utility_initiator = value(settings, "utility_initiator")
        self.portal = value(settings, "portal")
        self.lun_offset = value(settings, "lun_offset")
        self.repository_percent = value(settings, "repository_percent")
        self.copy_priority = value(settings, "copy_priority")
        self.poll_interval = float(value(settings, "poll_interval"))
        self.copy_timeout = float(value(settings, "copy_timeout"))
        self.concurrency = value(settings, "concurrency")
        self.initiator_prefix = value(settings, "initiator_prefix")
        self.hosts = HostMaker(self.pool, self.smcli, value(settings, "host_type"))
        self._utility_lock = threading.Lock()  # LUN choices on the utility host, in this process
        self._utility_users: dict[str, int] = {}  # exposures sharing a mapping, by label
        self._subsystem = ""  # its name, from the last profile read

    # -- reading the subsystem -----------------------------------------------------------------
    def _profile(self) -> Profile:
        profile = parse_profile(self.smcli.run("show storageSubsystem;"))
        self._subsystem = profile.name
        return profile

    def _require(self, volume: Volume) -> tuple[Profile, Drive]:
        profile = self._profile()
        drive = profile.drives.get(volume.location)
        if drive is None:
            raise NotFound(f"logical drive '{volume.location}' (volume {volume.index}) of pool "
                           f"'{self.pool}' does not exist on subsystem {profile.name or '?'}")
        return profile, drive

    def _free_label(self, profile: Profile, image: str, index: int) -> str:
        label = labels.volume_label(self.pool, image, index)
        for taken in (label, labels.master(label)):
            if taken in profile.drives:
                raise Conflict(f"volume {index} of image '{image}' exists already in pool "
                               f"'{self.pool}' (logical drive {taken})")
        if labels.partial(label) in profile.drives:  # a killed run's leftover
            self._delete_label(profile, labels.partial(label))
        return label

    def _target(self, profile: Profile, host: str) -> str:
        found = profile.hosts.get(host)
        target = (found.target if found else "") or profile.target_name
        if not target:
            raise DriverError(f"pool '{self.pool}': the subsystem's profile names no iSCSI target "
                              f"for host '{host}'; is it an iSCSI subsystem?")
        return target

    def _portal(self, profile: Profile) -> str:
        portal = self.portal or profile.portal
        if not portal:
            raise DriverError(f"pool '{self.pool}': the subsystem's profile shows no iSCSI host port; "
                              "set portal = \"ADDRESS:PORT\" in the pool's table")
        return portal

    def _volume(self, label: str, index: int, size: int, profile: Profile, subsystem: str = "",
                **kw: Any) -> Volume:
        drive = profile.drives.get(label)
        data = {"subsystem": profile.name or subsystem or self._subsystem, "array": self.array}
        if drive is not None:
            data.update(wwn=drive.wwn, owner=drive.owner)
        return Volume(index=index, pool=self.pool, format=FORMAT, location=label, size=size,
                      data=data, **kw)

    def _same_subsystem(self, other: StorageDriver) -> bool:
        return isinstance(other, Ds4xxxStorageDriver) and \
            set(other.smcli.controllers) == set(self.smcli.controllers)

    # -- making and removing logical drives ------------------------------------------------------
    def _delete_label(self, profile: Profile, label: str) -> None:
        """Delete a logical drive the pool made: its copy pair and mapping first."""
        dependents = [d.label for d in profile.drives.values() if d.base == label and d.kind == "flashcopy"]
        if dependents:
            raise Conflict(f"logical drive '{label}' of pool '{self.pool}' is the base of the "
                           f"FlashCopy logical drive(s) {', '.join(dependents)}; delete those first")
        with contextlib.suppress(SmcliError):  # no copy pair: nothing to stop
            self.smcli.run(f"stop volumeCopy target [{quote(label)}];")
        with contextlib.suppress(SmcliError):
            self.smcli.run(f"remove volumeCopy target [{quote(label)}];")
        if label in profile.mappings:
            self.smcli.run(f"remove logicalDrive [{quote(label)}] lunMapping "
                           f"host={quote(profile.mappings[label].host)};")
        self.smcli.run(f"delete logicalDrive [{quote(label)}];")

    def _discard(self, label: str) -> None:
        """Remove a half-made logical drive after a failure; a second failure is not raised
        over the first."""
        with contextlib.suppress(EncompassError):
            profile = self._profile()
            if label in profile.drives:
                self._delete_label(profile, label)

    def _write_new(self, profile: Profile, label: str, final: str, source: Path, source_format: str,
                   size: int, progress: Progress | None) -> Profile:
        """Create ``label`` mapped to the utility host, copy ``source`` onto it, unmap it and
        rename it ``final`` (three SMcli calls); nothing is left when any step fails. Returns
        the profile showing the new logical drive."""
        create = (f"create logicalDrive array={self.array} capacity={size} Bytes "
                  f"userLabel={quote(label)};")
        try:
            with self._on_utility(label, profile, before=[create]) as mapped:
                lunaccess.write_to_lun(source, source_format, mapped.address, self.copy_timeout,
                                       f"[pools.{self.pool}] copy_timeout")
                mapped.after = [f"set logicalDrive [{quote(label)}] userLabel={quote(final)};",
                                f"show logicalDrive [{quote(final)}];"]
        except BaseException:
            self._discard(label)
            raise
        if progress is not None:
            progress(size)
        return parse_profile(mapped.output)

    # -- import, write -------------------------------------------------------------------------
    def inspect_source(self, source: Path) -> None:
        """Refuse a directory tree (a LUN holds a disk) or a file that is no disk image."""
        if Path(source).is_dir():
            raise NotSupported(f"pool '{self.pool}' keeps disk images on logical drives; a directory "
                               f"tree ({source}) cannot go there")
        inspect_file(Path(source))

    def import_volume(self, image: str, index: int, source: Path,
                      progress: Progress | None = None) -> Volume:
        self.inspect_source(source)
        fmt, size = inspect_file(Path(source))
        profile = self._profile()
        label = self._free_label(profile, image, index)
        final = labels.master(label)
        made = self._write_new(profile, labels.partial(label), final, Path(source), fmt, size, progress)
        return self._volume(final, index, size, made, readonly=True)

    def write_volume(self, image: str, index: int, source: VolumeRef, size: int,
                     progress: Progress | None = None) -> Volume:
        if source.format not in ("raw", "qcow2") or source.partition is not None:
            raise NotSupported(f"pool '{self.pool}' copies whole raw or qcow2 disks onto logical "
                               f"drives, not {source.format} volumes")
        if size <= 0:
            raise InvalidInput(f"pool '{self.pool}': a logical drive needs a size above 0")
        profile = self._profile()
        label = self._free_label(profile, image, index)
        made = self._write_new(profile, labels.partial(label), label, Path(source.path), source.format,
                               size, progress)
        return self._volume(label, index, size, made)

    # -- clones --------------------------------------------------------------------------------
    def clone_volume(self, source: Volume, source_driver: StorageDriver, request: CloneRequest,
                     progress: CloneProgress) -> Volume | None:
        if not self._same_subsystem(source_driver):
            return None  # another subsystem or kind of pool: the core copies through expose
        if request.mode == "cow" and getattr(source_driver, "array", None) != self.array:
            return None  # a FlashCopy stays in its base's array
        if request.mode not in ("cow", "full"):
            raise InvalidInput(f"unknown clone mode '{request.mode}': use cow or full")
        if request.mode == "cow":
            return self._flashcopy(source, request)
        profile = self._profile()
        base = self._base(profile, source, request)
        label = self._free_label(profile, request.image, request.index)
        return self._volume_copy(source, base, label, progress)

    def _base(self, profile: Profile, source: Volume, request: CloneRequest) -> Drive:
        base = profile.drives.get(source.location)
        if base is None:
            raise NotFound(f"logical drive '{source.location}' (volume {source.index} of "
                           f"'{request.source_image}') is not on the subsystem of pool '{self.pool}'")
        return base

    def _flashcopy(self, source: Volume, request: CloneRequest) -> Volume:
        """One SMcli call, as an administrator would type it: the create, and a show of what it
        made. What the record says is checked first (a FlashCopy's base must be standard); the
        subsystem checks the rest (the base there, the labels free), and only a refusal is
        explained from the profile. No profile read per clone: a real SMcli starts a JVM per
        call, and ``clone --count 20`` would read the whole subsystem 20 times."""
        label = labels.volume_label(self.pool, request.image, request.index)
        if source.depth > 0:
            raise Conflict(f"logical drive '{source.location}' of pool '{self.pool}' is a flashcopy "
                           "logical drive; the DS4000 makes FlashCopies of standard ones only: "
                           "clone it with --mode full")
        if source.depth + 1 > request.max_depth:
            raise Conflict(f"a FlashCopy would be {source.depth + 1} deep, over the limit of "
                           f"{request.max_depth}; clone with --mode full")
        try:
            shown = self.smcli.run(
                f"create FlashCopyLogicalDrive baseLogicalDrive={quote(source.location)} "
                f"userLabel={quote(label)} repositoryUserLabel={quote(labels.repository(label))} "
                f"repositoryPercentOfBase={self.repository_percent};",
                f"show logicalDrive [{quote(label)}];")
        except SmcliError as refused:
            self._explain_flashcopy_refusal(source, request)
            raise refused
        made = parse_profile(shown)
        drive = made.drives.get(label)
        return self._volume(label, request.index, source.size or (drive.capacity if drive else 0),
                            made, depth=source.depth + 1,
                            subsystem=made.name or source.data.get("subsystem", ""))

    def _explain_flashcopy_refusal(self, source: Volume, request: CloneRequest) -> None:
        """Raise what the profile says went wrong with a FlashCopy the subsystem refused (its
        base gone or not standard, a label taken); return when it says nothing more."""
        try:
            profile = self._profile()
        except DriverError:  # unreachable now: the refusal itself is what there is to say
            return
        base = self._base(profile, source, request)
        if base.kind != "standard":
            raise Conflict(f"logical drive '{base.label}' of pool '{self.pool}' is a {base.kind} "
                           "logical drive; the DS4000 makes FlashCopies of standard ones only: "
                           "clone it with --mode full")
        label = labels.volume_label(self.pool, request.image, request.index)
        for taken in (label, labels.repository(label)):
            if taken in profile.drives:
                raise Conflict(f"volume {request.index} of image '{request.image}' exists already "
                               f"in pool '{self.pool}' (logical drive {taken})")

    def _volume_copy(self, source: Volume, base: Drive, label: str, progress: CloneProgress) -> Volume:
        target = labels.partial(label)
        capacity = max(source.size, base.capacity)
        try:
            self.smcli.run(f"create logicalDrive array={self.array} capacity={capacity} Bytes "
                           f"userLabel={quote(target)};",
                           f"create volumeCopy source={quote(base.label)} target={quote(target)} "
                           f"copyPriority={self.copy_priority} targetReadOnlyEnabled=FALSE;")
            progress.started_job(target, f"VolumeCopy of logical drive {base.label} to {target}")
            copies.wait(self.smcli, base.label, target, capacity, progress, self.poll_interval,
                        self.copy_timeout)
            shown = self.smcli.run(f"remove volumeCopy target [{quote(target)}];",
                                   f"set logicalDrive [{quote(target)}] userLabel={quote(label)};",
                                   f"show logicalDrive [{quote(label)}];")
        except BaseException:
            self._discard(target)
            raise
        return self._volume(label, source.index, capacity, parse_profile(shown))

    def flatten_volume(self, volume: Volume) -> Volume:
        raise NotSupported(f"pool '{self.pool}' cannot make a FlashCopy independent in place; "
                           "make a full clone of it (encompass clone --mode full)")

    def job_status(self, job: StorageJob) -> JobStatus:
        return copies.status(self.smcli, self._profile(), job.id)

    def cancel_job(self, job: StorageJob) -> None:
        """Stop the VolumeCopy and delete its target logical drive."""
        profile = self._profile()
        if job.id in profile.drives:
            self._delete_label(profile, job.id)

    # -- life and death ------------------------------------------------------------------------
    def delete_volume(self, volume: Volume) -> None:
        profile = self._profile()
        if volume.location in profile.drives:
            self._delete_label(profile, volume.location)

    def cleanup(self, image: str) -> list[str]:
        """Delete the image's half-made logical drives and unmap its drives from the utility
        host (what a killed operation left)."""
        removed = []
        profile = self._profile()
        for label in sorted(profile.drives):
            parsed = labels.parse(label)
            if parsed is None or parsed.image != image:
                continue
            if parsed.flag == "P":
                self._delete_label(profile, label)
                removed.append(f"deleted half-made logical drive {label} of pool '{self.pool}'")
                continue
            mapping = profile.mappings.get(label)
            if mapping is not None and mapping.host == self.utility_host:
                self.smcli.run(f"remove logicalDrive [{quote(label)}] lunMapping "
                               f"host={quote(mapping.host)};")
                removed.append(f"unmapped logical drive {label} from the utility host")
        return removed

    def discover(self) -> list[DiscoveredVolume]:
        profile = self._profile()
        found = []
        for drive in profile.drives.values():
            parsed = labels.parse(drive.label)
            if (parsed is None or parsed.flag == "P" or drive.array != self.array
                    or drive.kind not in ("standard", "flashcopy")):
                continue
            volume = self._volume(drive.label, parsed.index, drive.capacity, profile,
                                  readonly=parsed.readonly, depth=int(drive.kind == "flashcopy"))
            found.append(DiscoveredVolume(parsed.image, volume, drive.base or None))
        return sorted(found, key=lambda item: item.volume.location)

    def inventory(self) -> dict[str, Any]:
        """What the subsystem holds: its arrays, logical drives (label, kind, WWN, capacity,
        owner, the image a pool's label names, the mapping), hosts with ports and targets."""
        profile = self._profile()
        drives = []
        for drive in sorted(profile.drives.values(), key=lambda d: d.label):
            parsed = labels.parse(drive.label)
            mapping = profile.mappings.get(drive.label)
            drives.append({"label": drive.label, "kind": drive.kind, "array": drive.array,
                           "capacity": drive.capacity, "owner": drive.owner, "wwn": drive.wwn,
                           "base": drive.base or None, "image": parsed.image if parsed else None,
                           "host": mapping.host if mapping else None,
                           "lun": mapping.lun if mapping else None})
        return {"name": profile.name, "wwn": profile.wwn, "portal": self.portal or profile.portal,
                "arrays": [{"number": number, "free": free} for number, free in sorted(profile.free.items())],
                "drives": drives,
                "hosts": [{"label": h.label, "ports": list(h.ports), "target": h.target}
                          for h in sorted(profile.hosts.values(), key=lambda h: h.label)]}

    # -- the utility server --------------------------------------------------------------------
    @contextlib.contextmanager
    def _on_utility(self, label: str, profile: Profile, before: list[str] | None = None
                    ) -> Iterator[UtilityMapping]:
        """The logical drive mapped to the utility server's host for the block and unmapped
        after it (unless another exposure of this process still uses the mapping). ``before``
        runs in the same SMcli call as the mapping; ``after``, set in the block, in the same
        call as the unmapping when the block succeeds (its output is kept)."""
        with self._utility_lock:
            host = self.hosts.ensure(profile, self.utility_host, [self.utility_initiator])
            if host not in profile.hosts:  # just made: read its target
                profile = self._profile()
            mapping = profile.mappings.get(label)
            if mapping is not None and mapping.host != host:
                raise Conflict(f"logical drive '{label}' of pool '{self.pool}' is mapped to host "
                               f"'{mapping.host}' (LUN {mapping.lun}); a DS4000 maps a logical drive "
                               "to one host: detach it there first")
            if mapping is None:
                lun = self._map_to_utility(label, host, profile, before or [])
            else:
                lun = mapping.lun
                if before:
                    self.smcli.run(*before)
            self._utility_users[label] = self._utility_users.get(label, 0) + 1
            mapped = UtilityMapping(lunaccess.LunAddress(
                self._portal(profile), self._target(profile, host), lun + self.lun_offset,
                self.utility_initiator))
        unmap = [f"remove logicalDrive [{quote(label)}] lunMapping host={quote(host)};"]
        try:
            yield mapped
        except BaseException:
            mapped.after = []
            raise
        finally:
            with self._utility_lock:
                self._utility_users[label] -= 1
                last = self._utility_users[label] == 0
                if last:
                    del self._utility_users[label]
                commands = (unmap if last else []) + mapped.after
                if commands:
                    mapped.output = self.smcli.run(*commands)

    def _map_to_utility(self, label: str, host: str, profile: Profile, before: list[str]) -> int:
        """Map at the lowest free LUN; when another process took that LUN meanwhile (SMcli
        refuses), read the mappings again and take the next one."""
        for attempt in range(3):
            lun = self.hosts.free_lun(profile, host)
            try:
                self.smcli.run(*before, f"set logicalDrive [{quote(label)}] logicalUnitNumber={lun} "
                                        f"host={quote(host)};")
                return lun
            except SmcliError:
                profile = self._profile()
                if label in profile.drives:
                    before = []  # what ran before the mapping (creating the drive) is done
                if attempt == 2 or profile.luns_of(host).get(lun) in (None, label):
                    raise
        raise AssertionError("unreachable")

    @contextlib.contextmanager
    def expose(self, volume: Volume, writable: bool) -> Iterator[VolumeRef]:
        """The logical drive mapped to the utility host and exported as a raw file (FUSE);
        unmapped afterwards."""
        profile, drive = self._require(volume)
        parsed = labels.parse(drive.label)
        if writable and (volume.readonly or (parsed is not None and parsed.readonly)):
            raise Conflict(f"logical drive '{drive.label}' of pool '{self.pool}' is a master's "
                           "(read-only)")
        with self._on_utility(drive.label, profile) as mapped:
            export = lunaccess.export(mapped.address, writable, f"logical drive {drive.label} of pool "
                                                                f"'{self.pool}'")
            try:
                yield VolumeRef(path=export.raw_path, format=FORMAT)
            finally:
                export.close()

    # -- machines ------------------------------------------------------------------------------
    def _initiators(self, machine: Machine) -> list[str]:
        """The machine's iSCSI initiator names; a virtual machine that declares none gets one
        (its platform hands it to QEMU's iSCSI client), as the local pool's iSCSI export does."""
        declared = [port.address for port in machine.host_ports if port.kind == "iscsi"]
        if declared or machine.kind != "virtual":
            return declared
        return [f"{self.initiator_prefix}:initiator.{labels.iqn_part(machine.name)}"]

    def attach(self, volume: Volume, machine: Machine, request: AttachRequest) -> Attachment:
        if "iscsi" not in request.kinds:
            raise NotSupported(f"pool '{self.pool}' offers its logical drives over iscsi; machine "
                               f"'{machine.name}' takes {', '.join(request.kinds) or 'nothing'}")
        initiators = self._initiators(machine)
        if not initiators:
            raise InvalidInput(f"machine '{machine.name}' has no iSCSI initiator name (host port), so "
                               f"pool '{self.pool}' cannot map a LUN to it; record the initiator name "
                               "its firmware uses")
        profile, drive = self._require(volume)
        existing = profile.host_with_port(initiators)
        mapping = profile.mappings.get(drive.label)
        if mapping is not None and (existing is None or mapping.host != existing.label):
            raise Conflict(f"logical drive '{drive.label}' of pool '{self.pool}' is mapped to host "
                           f"'{mapping.host}' (LUN {mapping.lun}); a DS4000 maps a logical drive to "
                           f"one host: detach it there before attaching it to '{machine.name}'")
        host_label = existing.label if existing else labels.host_label(machine.name)
        made_host = existing is None
        host = self.hosts.ensure(profile, host_label, initiators)
        try:
            lun = self._map_for(profile, drive, host, request)
        except BaseException:
            if made_host:
                self.hosts.remove(host)
            raise
        target = self._target(self._profile() if made_host else profile, host)
        iscsi_lun = lun + self.lun_offset
        portal = self._portal(profile)
        return Attachment(index=volume.index, kind="iscsi",
                          address=f"iscsi://{portal}/{target}/{iscsi_lun}", format=volume.format,
                          readonly=volume.readonly, boot=request.boot, lun=lun,
                          details={"initiator": initiators[0], "host": host, "portal": portal,
                                   "target": target, "iscsi_lun": iscsi_lun, "wwn": drive.wwn})

    def _map_for(self, profile: Profile, drive: Drive, host: str, request: AttachRequest) -> int:
        """Map the drive to ``host`` at the requested LUN (the boot volume at 0, else the
        lowest free one); an existing mapping there at that LUN is kept."""
        mapping = profile.mappings.get(drive.label)
        wanted = request.lun if request.lun is not None else (0 if request.boot else None)
        if mapping is not None and mapping.host == host and wanted in (None, mapping.lun):
            return mapping.lun
        lun = wanted if wanted is not None else self.hosts.free_lun(profile, host, start=1)
        used_by = profile.luns_of(host).get(lun)
        if used_by is not None and used_by != drive.label:
            raise Conflict(f"LUN {lun} of host '{host}' is taken by logical drive '{used_by}' in pool "
                           f"'{self.pool}'; detach that one first or ask for another LUN")
        self.smcli.run(f"set logicalDrive [{quote(drive.label)}] logicalUnitNumber={lun} "
                       f"host={quote(host)};")
        return lun

    def detach(self, volume: Volume, machine: Machine) -> None:
        """Remove the mapping to the machine's host. The host of a virtual machine that declares
        no initiator name (the pool named it) goes with its last mapping: it is the pool's."""
        profile = self._profile()
        mapping = profile.mappings.get(volume.location)
        host = profile.host_with_port(self._initiators(machine))
        if mapping is None or host is None or mapping.host != host.label:
            return
        commands = [f"remove logicalDrive [{quote(volume.location)}] lunMapping host={quote(host.label)};"]
        named_by_pool = machine.kind == "virtual" and not any(
            port.kind == "iscsi" for port in machine.host_ports)
        if named_by_pool and set(profile.luns_of(host.label).values()) == {volume.location}:
            commands.append(f"delete host [{quote(host.label)}];")
        self.smcli.run(*commands)
