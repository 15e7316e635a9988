"""Moving functionality between machines: migrate, reassign, swap, machine resize."""

from __future__ import annotations

import click

from ..lazy import lazy_module
from . import output

migrate_op = lazy_module("encompass_core.operations.migrate")
reassign_op = lazy_module("encompass_core.operations.reassign")
profiles = lazy_module("encompass_core.operations.profiles")


@click.command("migrate")
@click.argument("clone")
@click.argument("machine_name", metavar="MACHINE", required=False)
@click.option("--pool", help="Copy the clone's volumes into this pool first (when MACHINE cannot "
                             "reach the pool they are in); the old copies are removed afterwards.")
@click.option("--set", "pairs", multiple=True, metavar="KEY=VALUE",
              help="A value for a hardware-dependent item on MACHINE (repeatable).")
@click.option("--host", help="Instead: move the clone's machine itself, running, to this host of "
                             "its platform (platforms that migrate: ESX).")
@click.pass_obj
def migrate(ctx, clone, machine_name, pool, pairs, host) -> None:
    """Move deployed CLONE to MACHINE: undeploy, re-attach, apply hardware-dependent items
    again (--param on=hardware), deploy. Any two machines will do: KVM to Xen, virtual to
    physical. If MACHINE cannot start it, the clone is deployed where it was again.

    \b
    Examples:
      encompass migrate web01 vm2
      encompass migrate web01 blade3 --pool san
      encompass migrate web01 --host esx2.lab
    """
    if host:
        if machine_name or pool:
            raise click.UsageError("--host moves the clone's own machine: give no MACHINE or --pool")
        image = migrate_op.migrate_live(ctx, clone, host)
        output.note(f"'{clone}' runs on machine '{image.machine}', moved live to host '{host}'")
        return
    if not machine_name:
        raise click.UsageError("say where to: MACHINE (or --host HOST)")
    from ..customization.items import parse_params

    image = migrate_op.migrate(ctx, clone, machine_name, pool, parse_params(pairs))
    output.note(f"'{clone}' migrated to machine '{image.machine}'")


@click.command("reassign")
@click.argument("machine_name", metavar="MACHINE")
@click.argument("clone")
@click.pass_obj
def reassign(ctx, machine_name, clone) -> None:
    """Give MACHINE other functionality: undeploy what it runs, deploy CLONE on it (migrated
    from its machine if it runs elsewhere)."""
    image = reassign_op.reassign(ctx, machine_name, clone)
    output.note(f"machine '{machine_name}' runs '{image.name}'")


@click.command("swap")
@click.argument("machine_a")
@click.argument("machine_b")
@click.pass_obj
def swap(ctx, machine_a, machine_b) -> None:
    """Exchange what MACHINE_A and MACHINE_B run."""
    on_b, on_a = reassign_op.swap(ctx, machine_a, machine_b)
    output.note(f"machine '{machine_a}' runs {_named(on_a)}, machine '{machine_b}' runs {_named(on_b)}")


def _named(image) -> str:
    return f"'{image.name}'" if image is not None else "nothing"


@click.command("resize")
@click.argument("name")
@click.option("--memory", help="Memory: MiB, or a size like 512M or 2G.")
@click.option("--cpus", type=click.IntRange(1, 1024), help="Virtual CPUs.")
@click.pass_obj
def resize(ctx, name, memory, cpus) -> None:
    """Change virtual machine NAME's memory and CPUs (never below what its image needs). A
    running machine restarts to take them."""
    changed = reassign_op.resize(ctx, name, profiles.memory_mib(memory) if memory else None, cpus)
    output.note(f"machine '{name}' has {changed.hardware.memory_mib} MiB and "
                f"{changed.hardware.cpus} CPU(s)")


def register(cli: click.Group) -> None:
    for command in (migrate, reassign, swap):
        cli.add_command(command)
    machine = cli.commands.get("machine")
    if machine is not None:
        machine.add_command(resize)
