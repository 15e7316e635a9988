"""``encompass esx``: what a vCenter holds, and moving or resizing one of its VMs.

``inventory`` lists the datacenters, clusters, hosts, datastores and networks of an esx
platform (one round trip); ``migrate`` relocates a machine to another host and/or datastore
(vMotion, Storage vMotion); ``reconfigure`` changes its CPUs and memory. Both record the
machine as the platform then reports it.
"""

from __future__ import annotations

import attrs
import click

from encompass_core.cli import output
from encompass_core.errors import InvalidInput
from encompass_core.lazy import lazy_module

# Imported when a command runs: ``encompass --help`` lists this module's commands.
machines_op = lazy_module("encompass_core.operations.machines")
model = lazy_module("encompass_core.model")
profiles = lazy_module("encompass_core.operations.profiles")


@click.group("esx")
def esx() -> None:
    """VMware vCenter and ESX hosts behind esx platforms."""


def _driver(ctx, platform: str):
    from .platform import EsxPlatformDriver

    driver = ctx.platform(platform).driver
    if not isinstance(driver, EsxPlatformDriver):
        raise InvalidInput(f"platform '{platform}' is not an esx platform")
    return driver


@esx.command("inventory")
@click.argument("platform")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@click.pass_obj
def inventory(ctx, platform: str, as_json: bool) -> None:
    """Show PLATFORM's datacenters, clusters, hosts, datastores and networks."""
    found = _driver(ctx, platform).resources()
    if as_json:
        output.emit_json(found)
        return
    output.table(("KIND", "NAME", "DETAILS"),
                 [(kind, item["name"], item.get("details", "")) for kind, items in found.items()
                  for item in items])


def _stored(ctx, name: str):
    machine = machines_op.machine(ctx, name)
    with ctx.store.snapshot() as tx:
        image = tx.find_image(machine.image) if machine.image else None
    return machine, image


def _record(ctx, stored, changed) -> None:
    with ctx.store.transaction() as tx:
        tx.put_machine(attrs.evolve(changed, image=stored.image))


@esx.command("migrate")
@click.argument("machine")
@click.option("--host", "host", help="The host to move it to.")
@click.option("--datastore", help="The datastore to move its files to.")
@click.pass_obj
def migrate(ctx, machine: str, host: str | None, datastore: str | None) -> None:
    """Move MACHINE (running or not) to another host and/or datastore."""
    if not host and not datastore:
        raise InvalidInput("say where to: --host HOST and/or --datastore DATASTORE")
    stored, image = _stored(ctx, machine)
    driver = _driver(ctx, stored.platform)
    image = image or model.Image(name=machine, kind="clone", state="ready")  # a VM without an image
    changed = driver.migrate(stored, image, {k: v for k, v in (("host", host),
                                                                ("datastore", datastore)) if v})
    _record(ctx, stored, changed)
    output.note(f"machine '{machine}' is on host {changed.extra.get('host')}, datastore "
                f"{', '.join(changed.extra.get('datastores') or ())}")


@esx.command("reconfigure")
@click.argument("machine")
@click.option("--cpus", type=click.IntRange(1, 768), help="Virtual CPUs.")
@click.option("--memory", help="Memory: MiB, or a size like 512M or 2G.")
@click.pass_obj
def reconfigure(ctx, machine: str, cpus: int | None, memory: str | None) -> None:
    """Change MACHINE's CPUs and/or memory."""
    if cpus is None and memory is None:
        raise InvalidInput("say what to change: --cpus N and/or --memory SIZE")
    stored, _ = _stored(ctx, machine)
    driver = _driver(ctx, stored.platform)
    hardware = model.HardwareProfile(
        memory_mib=profiles.memory_mib(memory) if memory else stored.hardware.memory_mib,
        cpus=cpus or stored.hardware.cpus)
    changed = driver.reconfigure(stored, hardware)
    _record(ctx, stored, changed)
    output.note(f"machine '{machine}' has {changed.hardware.cpus} CPU(s) and "
                f"{changed.hardware.memory_mib} MiB")
