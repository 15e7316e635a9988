"""Importing an OVA or OVF package: Encompass's own (every field of the image back) or another
tool's (a master whose hardware profile comes from the descriptor).

Everything that can be refused is refused before anything is recorded: a descriptor that is not
OVF, a file reference leading outside the package, a disk format other than single-file sparse
VMDK, a file whose digest does not match the manifest (each disk is read once for that). Then
the image is recorded in ``importing``, each disk is read in place (inside the OVA, at its
offset) into a qcow2 work file the pool takes, and the image becomes ``ready``. A failure
removes the volumes made so far; a killed import is left to ``encompass repair``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import attrs

from .. import lifecycle, rundir
from ..context import Context, Pool
from ..convert import to_document
from ..customization.access import VolumeRef
from ..errors import Conflict, InvalidInput, NotSupported
from ..model import Image, Volume, validate_name
from ..ovf import archive, metadata, reader, vmdk
from ..ovf.unnamed import UnnamedFile
from ..store import current_owner
from . import holding
from .export import StageProgress, stage_progress

KINDS = ("master", "clone")


@attrs.frozen
class ImportResult:
    """What an import made, and what the user should know about it."""

    image: Image
    producer: str  # encompass | vmware | virtualbox | ovf
    notes: tuple[str, ...] = ()


def import_package(ctx: Context, path: Path, as_kind: str | None = None, name: str | None = None,
                   pool: str | None = None, on_progress: StageProgress | None = None) -> ImportResult:
    """Import the OVA or OVF at ``path`` as image ``name`` (default: the name it carries)."""
    where = str(path)
    package = archive.open_package(str(Path(path).expanduser()))
    archive.verify_descriptor(package)
    descriptor = reader.read(package.descriptor, where)
    carried = descriptor.carried
    kind = as_kind or (carried.kind if carried else "master")
    if kind not in KINDS:
        raise InvalidInput(f"--as takes master or clone, not {kind!r}")
    if kind == "clone" and (carried is None or carried.kind != "clone"):
        raise InvalidInput(f"{where}: only a clone exported by Encompass can be imported as a clone (a "
                           "clone needs its master's lineage); import it as a master: --as master")
    name = validate_name(name or (carried.image.get("name") if carried else None)
                         or _name_from(descriptor.name or Path(path).stem))
    with ctx.store.snapshot() as tx:
        if tx.find_image(name) is not None:
            raise Conflict(f"image '{name}' exists already; import under another name: --name NEW_NAME")
    members = [package.member(disk.href) for disk in descriptor.disks]
    for disk, member in zip(descriptor.disks, members, strict=True):
        vmdk.check(member, where)
        archive.verify(package, disk.href, stage_progress(on_progress, "checking digests",
                                                    sum(m.size for m in members)))
    target = ctx.pool(pool)
    if not target.driver.capabilities.imports:
        raise NotSupported(f"pool '{target.name}' takes no imports from this server; import into "
                           "another pool and clone from there (encompass clone --pool)")
    image = _image(descriptor, carried, kind, name, where)
    made = _make(ctx, target, image, descriptor, members, carried, where, on_progress)
    notes = _notes(ctx, made)
    if package.manifest is None:
        notes.insert(0, f"{where} has no manifest: its files were taken without a digest to check "
                        "them against")
    return ImportResult(made, descriptor.producer, tuple(notes))


def _name_from(text: str) -> str:
    """An image name made from a foreign package's name ("Ubuntu 22.04 Server" -> ubuntu-22-04-server)."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:63].strip("-") or "imported"


def _image(descriptor: reader.Descriptor, carried: metadata.Carried | None, kind: str, name: str,
           where: str) -> Image:
    """The image to record (state ``new``, no volumes yet)."""
    if carried is None:
        return Image(name=name, kind="master", state="new", version=1, hardware=descriptor.hardware,
                     software=descriptor.software)
    # What belongs to a repository is never taken from a package (a crafted one could claim a
    # machine, or hold the image locked).
    doc = {k: v for k, v in carried.image.items() if k not in metadata.local_fields()}
    if kind == "master" and carried.kind == "clone":
        # A clone made a master: it keeps its profiles; its master's items customize its clones.
        items = (carried.master or {}).get("items", [])
        doc.update(kind="master", version=1, master=None, parent=None, master_version=None,
                   inputs={}, applied={}, items=items)
    # Restored as importing (a state a stored image may be in), recorded as coming from "new".
    restored = metadata.restore_image(doc, where, name=name, state="importing", volumes=[])
    return attrs.evolve(restored, state="new")


def _make(ctx: Context, target: Pool, image: Image, descriptor: reader.Descriptor,
          members: list[archive.Member], carried: metadata.Carried | None, where: str,
          on_progress: StageProgress | None) -> Image:
    events: list = []
    history = metadata.restore_events(carried.history, image.name, where) if carried else []
    with ctx.store.transaction() as tx:
        if tx.find_image(image.name) is not None:
            raise Conflict(f"image '{image.name}' exists already; import under another name: --name NEW_NAME")
        importing = attrs.evolve(image, state="importing", owner=current_owner("import", lifecycle.NEW))
        tx.add_image(importing)
        for event in history:
            tx.add_event(event)
        holding.record(ctx, tx, holding.transition_event(
            image, "importing", f"import of {where} ({descriptor.producer} package) into pool "
            f"'{target.name}' as a {image.kind}", "import"), events)
    holding.announce(ctx, events)
    held = holding.Holding(image=importing, operation=lifecycle.operation("import"), dirty=True)
    volumes: list[Volume] = []
    carried_volumes = list(carried.image.get("volumes", [])) if carried else []
    if len(carried_volumes) != len(members):
        carried_volumes = [{"index": n} for n in range(len(members))]
    timeout = float(target.section.setting("copy_timeout", 3600, int))
    try:
        for carried_volume, disk, member in zip(carried_volumes, descriptor.disks, members, strict=True):
            index = int(carried_volume.get("index", len(volumes)))
            made = _volume(target, image, index, disk, member, timeout,
                           stage_progress(on_progress, f"{image.name}: disk {index}", disk.capacity))
            volumes.append(made)
    except BaseException as exc:
        holding.delete_volumes(ctx, volumes)
        holding.fail(ctx, held, "interrupted by the user (Ctrl-C)" if isinstance(exc, KeyboardInterrupt)
                     else str(exc))
        raise
    documents = [metadata.merge_volume(carried_volume, to_document(volume))
                 for carried_volume, volume in zip(carried_volumes, volumes, strict=True)]
    held.image = metadata.restore_image(to_document(importing), where, volumes=documents)
    held.message = f"imported {len(volumes)} disk(s) from {where} as a {image.kind}"
    return holding.finish(ctx, held)


def _volume(target: Pool, image: Image, index: int, disk: reader.DiskRef, member: archive.Member,
            timeout: float, progress: Callable[[int], None] | None) -> Volume:
    """One disk into the pool: read in place into a qcow2 work file, which the pool takes as a
    master's read-only volume (``import_volume``) or a clone's own (``write_volume``)."""
    with UnnamedFile(rundir.current(), f"import-{image.name}-{index}") as work:
        vmdk.from_vmdk(member, work.path, disk.capacity, progress, timeout)
        if image.is_master:
            return target.driver.import_volume(image.name, index, Path(work.path))
        return target.driver.write_volume(image.name, index, VolumeRef(path=work.path, format="qcow2"),
                                          disk.capacity)


def _notes(ctx: Context, image: Image) -> list[str]:
    if image.is_master or not image.master:
        return []
    with ctx.store.snapshot() as tx:
        master = tx.find_image(image.master)
    if master is None:
        return [f"clone '{image.name}' derives from master '{image.master}' (version "
                f"{image.master_version}), which this repository does not hold: customizing it needs "
                "that master's items (import the master too)"]
    return []
