"""Master versions: version N+1 made from a patched clone or from new files, the versions kept
while clones derive from them, and retiring one that no clone needs any more.

A master's current version is its own ``version`` and ``volumes``; ``versions`` lists every
version still kept (the current one included), each with its read-only volumes, so clones of
older versions keep reading through them. A new version is made under the master's
``updating`` lock, in volumes of its own storage name (``MASTER.vN``, recorded as the
master's ``making``): the master's record changes only at the end, so an update killed
half-way leaves the master as it was, and ``encompass repair`` removes the half-made volumes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path

import attrs

from .. import lifecycle
from ..context import Context
from ..errors import Conflict, EncompassError, InvalidInput, NotFound, NotSupported
from ..lazy import lazy_module
from ..model import Image, ImageSummary, MasterVersion, Volume, now
from ..store import Transaction
from . import claims, holding

# Imported when a version is made: image listings import this module for its version lookups
# only, and cloning brings the drivers' contract and the worker pools (start-up time).
batch = lazy_module("encompass_core.operations.batch")
clone_op = lazy_module("encompass_core.operations.clone")


@attrs.frozen
class VersionInfo:
    """One kept version of a master, and the clones deriving from it."""

    number: int
    current: bool
    created: str
    note: str
    volumes: int
    size: int
    clones: tuple[str, ...] = ()  # clones on this version
    kept_by: tuple[str, ...] = ()  # rebased clones keeping it for rollback


def storage_name(image: str, version: int) -> str:
    """The name pools keep the volumes of ``image``'s version ``version`` under (a dot cannot
    be in an image name, so it never clashes with another image's volumes)."""
    return f"{image}.v{version}"


def kept(master: Image) -> list[MasterVersion]:
    """Every version of ``master`` still kept, oldest first; a master made before versions
    were recorded has its one current version."""
    found = {v.number: v for v in master.versions}
    if master.version is not None and master.version not in found:
        found[master.version] = MasterVersion(master.version, master.volumes, master.created, "imported")
    return [found[n] for n in sorted(found)]


def latest_versions(tx: Transaction, clones: Sequence[Image | ImageSummary]) -> dict[str, int | None]:
    """Master name -> its current version, for the masters of ``clones`` (one read each)."""
    found: dict[str, int | None] = {}
    for clone in clones:
        if clone.master and clone.master not in found:
            master = tx.find_image(clone.master)
            found[clone.master] = master.version if master is not None else None
    return found


def is_outdated(image: Image | ImageSummary, latest: dict[str, int | None]) -> bool:
    """Whether a clone derives from an older version than its master's current one."""
    newest = latest.get(image.master or "")
    return (not image.is_master and newest is not None and image.master_version is not None
            and image.master_version < newest)


def outdated_clones(ctx: Context, master_name: str) -> list[str]:
    """The clones of ``master_name`` on an older version than its current one."""
    with ctx.store.snapshot() as tx:
        master = _master(tx, master_name)
        return [c.name for c in tx.images(kind="clone", master=master_name)
                if c.master_version is not None and c.master_version < master.version]


def list_versions(ctx: Context, master_name: str) -> list[VersionInfo]:
    """The kept versions of ``master_name`` with the clones on each."""
    with ctx.store.snapshot() as tx:
        master = _master(tx, master_name)
        clones = tx.images(kind="clone", master=master_name)
    return [VersionInfo(
        number=v.number, current=v.number == master.version, created=v.created, note=v.note,
        volumes=len(v.volumes), size=sum(x.size for x in v.volumes),
        clones=tuple(c.name for c in clones if c.master_version == v.number),
        kept_by=tuple(c.name for c in clones if c.previous and c.previous.master_version == v.number),
    ) for v in kept(master)]


def _master(tx: Transaction, name: str) -> Image:
    image = tx.image(name)
    if not image.is_master:
        raise InvalidInput(f"'{name}' is a clone, not a master (its master is '{image.master}')")
    return image


# -- update ------------------------------------------------------------------------------
def update_from_clone(ctx: Context, master_name: str, clone_name: str) -> Image:
    """Make clone ``clone_name`` (patched, upgraded...) version N+1 of ``master_name``: its volumes
    copied into independent volumes, its own customization reverted in the copy (so the master
    stays generic), sealed read-only. Data volumes are copied from the master's current version.
    """
    with ctx.store.snapshot() as tx:
        master = _master(tx, master_name)
        source = tx.image(clone_name)
        if source.is_master or source.master != master_name:
            raise InvalidInput(f"'{clone_name}' is not a clone of master '{master_name}'"
                               + (f" (its master is '{source.master}')" if source.master else ""))
        if source.state != "ready":
            raise Conflict(f"cannot make a master version of clone '{clone_name}': it is {source.state}; "
                           + ("undeploy it first (encompass undeploy " + clone_name + ")"
                              if source.state == "deployed" else "it must be ready"))
        claims.refuse(source, "make a master version of", claims.claimed_by(tx))
        lineage = batch._with_lineage(tx, [source, master])
    target = ctx.pool(master.volumes[0].pool)  # a new version lives where the master lives

    def make(held: holding.Holding, name: str) -> tuple[list[Volume], str]:
        volumes = []
        for volume in source.volumes:
            if volume.index in master.data_volumes:
                volumes.append(_copy_data(ctx, target, held.image, volume.index, name))
            else:
                volumes.append(clone_op.copy_volume(ctx, target, clone_name, volume, name, "full",
                                                    record_jobs_on=master_name))
        _revert_customization(ctx, source, volumes, lineage, master.data_volumes)
        return [ctx.pool(v.pool).driver.seal_volume(v) for v in volumes], f"from clone '{clone_name}'"

    return _update(ctx, master_name, make)


def update_from_files(ctx: Context, master_name: str, sources: Sequence[Path]) -> Image:
    """Make ``sources`` (one file or tree per volume that is not a data volume, in order) version
    N+1 of ``master_name``; data volumes are copied from the current version."""
    paths = [Path(s).expanduser() for s in sources]
    with ctx.store.snapshot() as tx:
        master = _master(tx, master_name)
    software = sorted(v.index for v in master.volumes if v.index not in master.data_volumes)
    if len(paths) != len(software):
        raise InvalidInput(
            f"master '{master_name}' has {len(software)} volume(s) besides its data volumes "
            f"(volume(s) {', '.join(map(str, software)) or 'none'}); give one file or directory each, "
            f"in order (got {len(paths)})")
    for path in paths:
        if not path.exists():
            raise NotFound(f"no such file or directory: {path}")
    target = ctx.pool(master.volumes[0].pool)  # a new version lives where the master lives
    if not target.driver.capabilities.imports:
        raise NotSupported(f"pool '{target.name}' takes no imports from this server; make the new version "
                           f"from a clone instead (encompass master update {master_name} --from CLONE)")
    for path in paths:
        target.driver.inspect_source(path)

    def make(held: holding.Holding, name: str) -> tuple[list[Volume], str]:
        volumes = []
        files = dict(zip(software, paths, strict=True))
        for volume in sorted(master.volumes, key=lambda v: v.index):
            if volume.index in files:
                volumes.append(target.driver.import_volume(name, volume.index, files[volume.index]))
            else:
                volume = _copy_data(ctx, target, held.image, volume.index, name)
                volumes.append(ctx.pool(volume.pool).driver.seal_volume(volume))
        return volumes, "imported from " + ", ".join(map(str, paths))

    return _update(ctx, master_name, make)


def _update(ctx: Context, master_name: str, make) -> Image:
    """Run ``make(held, storage name) -> (volumes, note)`` under the master's ``updating``
    lock, then record the volumes as the master's next version."""

    def take(tx: Transaction, image: Image) -> Image:
        return attrs.evolve(image, making=storage_name(image.name, image.version + 1))

    with holding.hold(ctx, master_name, "update", check=take) as held:
        number = held.image.version + 1
        made: list[Volume] = []
        try:
            made, note = make(held, held.image.making)
        except BaseException:
            _remove(ctx, held.image.making, made, held.image)
            raise
        versions = [*kept(held.image), MasterVersion(number, tuple(made), now(), note)]
        held.image = attrs.evolve(held.image, version=number, volumes=tuple(made),
                                  versions=tuple(versions))
        held.message = f"version {number} made {note} ({len(made)} volume(s))"
    return held.result


def _copy_data(ctx: Context, target, master: Image, index: int, name: str) -> Volume:
    """A data volume of the new version: a copy of the current version's (sealed by the caller)."""
    current = next((v for v in master.volumes if v.index == index), None)
    if current is None:
        raise Conflict(f"master '{master.name}' marks volume {index} as data but has no such volume")
    return clone_op.copy_volume(ctx, target, master.name, current, name, "full", record_jobs_on=master.name)


def _revert_customization(ctx: Context, source: Image, volumes: list[Volume], lineage: list[Image],
                          data_volumes: Sequence[int]) -> None:
    """Un-customize the copy of ``source`` (its items restored from its parent, or its version
    of the master), without touching ``source`` itself; data volumes came from the master."""
    applied = {k: r for k, r in source.applied.items()
               if r.get("item", {}).get("volume", 0) not in data_volumes}
    if not applied:
        return
    # Imported here: the customization machinery is heavy, and image listings and clone
    # import this module for its version lookups only (start-up time is paid by every command).
    from .customize import _Images, _uncustomize_body, _Work

    copy = attrs.evolve(source, volumes=tuple(volumes), applied=applied)
    work = _Work(ctx, holding.Holding(image=copy, operation=lifecycle.operation("uncustomize")),
                 _Images(lineage))
    _uncustomize_body(ctx, work, None)


def _remove(ctx: Context, name: str | None, made: Sequence[Volume], image: Image) -> None:
    """Remove what a failed update or rebase made (best effort: repair finds the rest)."""
    for volume in made:
        with contextlib.suppress(EncompassError):
            holding.delete_volumes(ctx, [volume])
    if name:
        for pool in {v.pool for v in image.volumes}:
            with contextlib.suppress(EncompassError, OSError):
                ctx.pool(pool).driver.cleanup(name)


# -- retire ------------------------------------------------------------------------------
def retire_version(ctx: Context, master_name: str, number: int) -> MasterVersion:
    """Remove version ``number`` of ``master_name`` and its volumes; refused for the current
    version and while any clone derives from it or keeps it for a rollback."""
    retired: list[MasterVersion] = []

    def check(tx: Transaction, master: Image) -> None:
        versions = kept(master)
        found = next((v for v in versions if v.number == number), None)
        if found is None:
            raise NotFound(f"master '{master_name}' has no version {number} (kept: "
                           f"{', '.join(str(v.number) for v in versions)})")
        if number == master.version:
            raise Conflict(f"cannot retire version {number} of '{master_name}': it is the current one")
        users = [c.name for c in tx.images(kind="clone", master=master_name)
                 if c.master_version == number
                 or (c.previous is not None and c.previous.master_version == number)]
        if users:
            shown = ", ".join(users[:10]) + (f" and {len(users) - 10} more" if len(users) > 10 else "")
            raise Conflict(
                f"cannot retire version {number} of '{master_name}': {len(users)} clone(s) derive from "
                f"it or keep it for a rollback: {shown}. Rebase them first (encompass rebase "
                f"--all-outdated {master_name}), or discard their old volumes (encompass rebase "
                "CLONE --discard-old)")
        retired.append(found)

    with holding.hold(ctx, master_name, "retire", check=check) as held:
        [found] = retired
        left = tuple(v for v in kept(held.image) if v.number != number)
        held.image = attrs.evolve(held.image, versions=left)
        current = {v.location for v in held.image.volumes}
        holding.remove_volumes(ctx, held, [v for v in found.volumes if v.location not in current])
        held.message = f"version {number} retired ({len(found.volumes)} volume(s) removed)"
    return found

