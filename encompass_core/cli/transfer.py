"""``encompass export`` and ``encompass import``: images as OVA/OVF packages."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..lazy import lazy_module
from . import output

export_op = lazy_module("encompass_core.operations.export")
package_import = lazy_module("encompass_core.operations.package_import")


class _Stages:
    """One progress bar per stage of an export or import (on stderr, only at a terminal)."""

    def __init__(self) -> None:
        self.bar = None
        self.tasks: dict[str, int] = {}
        if sys.stderr.isatty():
            from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(),
                                TimeElapsedColumn(), console=output.err)

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self.bar is None:
            return
        if stage not in self.tasks:
            self.tasks[stage] = self.bar.add_task(stage, total=total or None)
        self.bar.advance(self.tasks[stage], done)

    def __enter__(self) -> _Stages:
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.bar is not None:
            self.bar.stop()


@click.command("export")
@click.argument("image")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--with-lineage", is_flag=True,
              help="Also carry the clone's parents (their metadata, not their disks) and the "
                   "image's history.")
@click.option("--force", is_flag=True, help="Replace FILE if it exists.")
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
@click.pass_obj
def export(ctx, image, file, with_lineage, force, as_json) -> None:
    """Export IMAGE (a master or a clone) as the OVA FILE, for VMware, VirtualBox or another
    Encompass.

    \b
    The OVA (DMTF DSP0243) holds the OVF descriptor, one stream-optimized VMDK per volume and
    a manifest of SHA-256 digests. The descriptor's hardware section says the CPUs, memory
    and firmware of the hardware profile; an Encompass section (ignored by other tools)
    carries the image's metadata: profiles, customization items, lineage and versions, and
    the non-secret customization inputs. Secret inputs are never stored, so never exported.
    The file appears only once whole.

    \b
    Examples:
      encompass export debian12 debian12.ova
      encompass export web01 /srv/export/web01.ova --with-lineage
    """
    with _Stages() as stages:
        result = export_op.export_image(ctx, image, file, with_lineage, force, on_progress=stages)
    if as_json:
        output.emit_json(result)
        return
    output.note(f"exported '{image}' to {result.path}: {len(result.disks)} disk(s), "
                f"{output.size(result.size)}")


_MADE_BY = {"encompass": "an Encompass", "vmware": "a VMware", "virtualbox": "a VirtualBox"}


@click.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--as", "as_kind", type=click.Choice(["master", "clone"]),
              help="Import as a master or a clone [default: what the package says; master for "
                   "packages other tools made]. A clone exported by Encompass can become a master.")
@click.option("--name", help="The new image's name [default: the name in the package].")
@click.option("--pool", help="Pool for the volumes [default: the configured default].")
@click.option("--json", "as_json", is_flag=True, help="Print the new image as JSON.")
@click.pass_obj
def import_(ctx, file, as_kind, name, pool, as_json) -> None:
    """Import FILE, an OVA or an OVF descriptor (with its disks beside it).

    \b
    A package Encompass exported comes back with every field of its metadata; one that
    VMware, VirtualBox or another OVF tool made becomes a master whose hardware profile comes
    from its VirtualHardwareSection (and vmw:/vbox: extensions). Refused, before anything is
    recorded: a file whose digest does not match the manifest, a file reference leading
    outside the package, a disk that is not a stream-optimized or sparse VMDK.

    \b
    Examples:
      encompass import debian12.ova
      encompass import appliance.ova --name appliance --as master
      encompass import web01.ova --name web01-copy
    """
    with _Stages() as stages:
        result = package_import.import_package(ctx, file, as_kind, name, pool, on_progress=stages)
    image = result.image
    for note in result.notes:
        output.note(f"note: {note}")
    if as_json:
        output.emit_json(image)
        return
    hw = image.hardware
    made_by = _MADE_BY.get(result.producer, "an OVF")
    output.note(f"imported {image.kind} '{image.name}' from {made_by} package: "
                f"{len(image.volumes)} volume(s), {output.size(sum(v.size for v in image.volumes))}, "
                f"{hw.cpus} CPU(s), {hw.memory_mib} MiB, {hw.firmware}")


def register(cli: click.Group) -> None:
    cli.add_command(export)
    cli.add_command(import_, "import")
