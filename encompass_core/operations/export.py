"""Exporting an image as an OVA (DMTF DSP0243) that VMware, VirtualBox and Encompass import.

The image is held in ``exporting`` for the length of the export (nothing changes it meanwhile)
and goes back to the state it was in. Each volume is reached through its pool's ``expose`` and
written as a stream-optimized VMDK; the package (descriptor, disks, manifest) is written into
an unnamed file in the target's folder, named only once whole (:mod:`..ovf.unnamed`): a
failed, interrupted or killed export leaves no file at all, and ``encompass repair`` puts a
killed export's image back as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import attrs

from ..context import Context
from ..errors import Conflict, InvalidInput, NotFound, NotSupported
from ..model import Image
from ..ovf import metadata, vmdk, writer
from ..ovf.archive import OvaWriter, file_chunks
from ..ovf.unnamed import UnnamedFile
from . import holding

#: ``on_progress(stage, bytes done since the last call, bytes in the stage)``.
StageProgress = Callable[[str, int, int], None]


@attrs.frozen
class ExportResult:
    """What an export wrote."""

    image: str
    path: str
    size: int  # bytes of the OVA
    disks: tuple[str, ...]  # the disk files inside it


def _check_target(target: Path, force: bool) -> Path:
    target = target.expanduser()
    if target.suffix.lower() != ".ova":
        raise InvalidInput(f"{target}: an export is an OVA file; name it NAME.ova")
    if not target.parent.is_dir():
        raise NotFound(f"no such folder: {target.parent}")
    if target.is_dir():
        raise InvalidInput(f"{target} is a folder; give the OVA's file name")
    if target.exists() and not force:
        raise Conflict(f"{target} exists already; remove it, pick another name, or give --force")
    return target


def _lineage(ctx: Context, image: Image, with_lineage: bool) -> tuple[Image | None, list[Image], list]:
    """The clone's master; with ``with_lineage`` the parents in between and the history."""
    with ctx.store.snapshot() as tx:
        master = tx.find_image(image.master) if image.master else None
        ancestors: list[Image] = []
        history = tx.events(image.name) if with_lineage else []
        if history and history[-1].to_state == "exporting":
            history = history[:-1]  # this export's own start: the image's present, not its past
        parent = image.parent
        while with_lineage and parent and parent != image.master and len(ancestors) < 1000:
            found = tx.find_image(parent)
            if found is None:
                break
            ancestors.append(found)
            parent = found.parent
    return master, ancestors, history


def export_image(ctx: Context, name: str, target: Path, with_lineage: bool = False, force: bool = False,
                 on_progress: StageProgress | None = None) -> ExportResult:
    """Write image ``name`` as the OVA ``target``."""
    target = _check_target(Path(target), force)
    with ctx.store.snapshot() as tx:
        found = tx.image(name)
    trees = [v.index for v in found.volumes if v.format == "dir"]
    if trees:
        raise NotSupported(f"cannot export '{name}': volume {trees[0]} is a directory tree, and an OVA "
                           "holds disks only")
    if not found.volumes:
        raise Conflict(f"cannot export '{name}': it has no volumes")
    with holding.hold(ctx, name, "export") as held:
        image = held.image
        master, ancestors, history = _lineage(ctx, image, with_lineage)
        carried = metadata.carry(image, master, ancestors, history)
        result = _write(ctx, image, carried, target, on_progress)
        held.message = (f"exported to {target} ({len(image.volumes)} disk(s), {result.size} bytes"
                        + (", with lineage" if with_lineage else "") + ")")
    return result


def _write(ctx: Context, image: Image, carried: metadata.Carried, target: Path,
           on_progress: StageProgress | None) -> ExportResult:
    works: list[UnnamedFile] = []
    try:
        disks = []
        for volume in image.volumes:
            pool = ctx.pool(volume.pool)
            timeout = float(pool.section.setting("copy_timeout", 3600, int))
            stage = f"{image.name}: disk {volume.index} to VMDK"
            work = UnnamedFile(target.parent, f"{target.name}.disk{volume.index}")
            works.append(work)
            with pool.driver.expose(volume, writable=False) as ref:
                vmdk.to_stream_optimized(ref.path, ref.format, work.path, volume.size,
                                         stage_progress(on_progress, stage, volume.size), timeout)
            disks.append(writer.DiskFile(href=f"{image.name}-disk{volume.index}.vmdk", size=work.size,
                                         capacity=volume.size))
        descriptor = writer.descriptor(image.name, image.hardware, image.software, disks, carried)
        total = sum(d.size for d in disks)
        with UnnamedFile(target.parent, target.name) as ova:
            with open(ova.fd, "wb", closefd=False, buffering=1 << 20) as out:
                package = OvaWriter(out)
                package.add_bytes(f"{image.name}.ovf", descriptor)
                for disk, work in zip(disks, works, strict=True):
                    package.add(disk.href, disk.size, file_chunks(work.fd, disk.size),
                                stage_progress(on_progress, f"{image.name}: packing", total))
                package.add_bytes(f"{image.name}.mf", package.manifest())
                package.finish()
            ova.publish(target)
            size = ova.size
    finally:
        for work in works:
            work.close()
    return ExportResult(image.name, str(target), size, tuple(d.href for d in disks))


def stage_progress(on_progress: StageProgress | None, stage: str, total: int
                   ) -> Callable[[int], None] | None:
    """A byte counter reporting to ``on_progress`` as ``stage`` of ``total`` bytes."""
    if on_progress is None:
        return None
    return lambda done: on_progress(stage, done, total)
