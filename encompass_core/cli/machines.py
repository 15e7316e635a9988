"""Machines and deployment: discover, machine list/show/power, deploy, undeploy."""

from __future__ import annotations

import click

from ..operations import deploy as deploy_op
from ..operations import machines as machines_op
from . import output


@click.command("discover")
@click.option("--platform", help="Ask only this platform.")
@click.option("--seed", "seeds", multiple=True, metavar="ADDRESS",
              help="Also ask plugins to find platforms from this address or range (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="A JSON list: one object per platform and pool.")
@click.pass_obj
def discover(ctx, platform, seeds, as_json) -> None:
    """Ask every configured platform and pool what it has, and record the machines found.

    With --seed, plugins also look for platforms not configured yet (SLP, probing) and propose
    [platforms.NAME] tables to add to encompass.toml.
    """
    if seeds:
        proposals = machines_op.propose_platforms(ctx, seeds)
        if as_json:
            output.emit_json(proposals)
            return
        if not proposals:
            output.note("no platform found from those seeds")
        for table in proposals:
            name = table.get("name", "?")
            settings = "".join(f"\n{k} = {v!r}" for k, v in table.items() if k != "name")
            output.out.print(f"[platforms.{name}]{settings}\n", markup=False)
        return
    reports = machines_op.discover(ctx, platform)
    if as_json:
        output.emit_json(reports)
        return
    if not reports:
        output.note(f"nothing to ask: no platform or pool is configured in {ctx.config.path}")
        return
    output.table(("SOURCE", "FOUND", "NEW", "ERROR"),
                 [(r.source, r.found, ", ".join(r.new), r.error) for r in reports])
    for report in reports:
        for name in report.released:
            output.note(f"machine '{name}' claimed an image that no longer exists: claim released")
    if any(r.error for r in reports):
        raise SystemExit(7)


@click.group("machine")
def machine() -> None:
    """Machines offered by the platforms (virtual or physical, treated alike)."""


@machine.command("list")
@click.option("--fits", "fits", metavar="IMAGE", help="Say which machines can run IMAGE, and why not.")
@click.option("--json", "as_json", is_flag=True, help="A JSON list of objects.")
@click.pass_obj
def machine_list(ctx, fits, as_json) -> None:
    """List known machines (encompass discover refreshes them)."""
    with ctx.store.snapshot() as tx:
        machines = tx.machines()
        image = tx.image(fits) if fits else None
    rows = []
    for found in machines:
        row = {"name": found.name, "platform": found.platform, "kind": found.kind, "power": found.power,
               "memory_mib": found.hardware.memory_mib, "cpus": found.hardware.cpus,
               "arch": found.hardware.arch, "image": found.image}
        if image is not None:
            problems = machines_op.fit_problems(found, image)
            if found.image and found.image != image.name:
                problems.append(f"runs '{found.image}'")
            row["fits"] = not problems
            row["why_not"] = "; ".join(problems)
        rows.append(row)
    if as_json:
        output.emit_json(rows)
        return
    if not rows:
        output.note("no machines known yet: encompass discover")
        return
    columns = ["NAME", "PLATFORM", "KIND", "POWER", "MEMORY", "CPUS", "ARCH", "IMAGE"]
    if image is not None:
        columns += ["FITS", "WHY NOT"]
    output.table(columns, [
        [r["name"], r["platform"], r["kind"], r["power"], f"{r['memory_mib']} MiB", r["cpus"], r["arch"],
         r["image"]] + ([("yes" if r["fits"] else "no"), r["why_not"]] if image is not None else [])
        for r in rows])


@machine.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="The whole record as JSON.")
@click.pass_obj
def machine_show(ctx, name, as_json) -> None:
    """Show what is known of machine NAME."""
    found = machines_op.machine(ctx, name)
    if as_json:
        output.emit_json(found)
        return
    hw = found.hardware
    rows = [("name", found.name), ("platform", found.platform), ("kind", found.kind),
            ("uuid", found.uuid), ("power", found.power),
            ("hardware", f"{hw.memory_mib} MiB, {hw.cpus} CPU(s), {hw.arch}, {hw.firmware}"),
            ("macs", ", ".join(found.macs)),
            ("host ports", ", ".join(f"{p.kind}:{p.address}" for p in found.host_ports)),
            ("addresses", ", ".join(found.addresses)), ("disks", ", ".join(found.disks)),
            ("image", found.image), ("discovered", output.when(found.discovered))]
    rows += [(k, v) for k, v in found.extra.items()]
    output.table(("FIELD", "VALUE"), rows)


@machine.command("power")
@click.argument("name")
@click.argument("action", type=click.Choice(["on", "off", "reset"]))
@click.pass_obj
def machine_power(ctx, name, action) -> None:
    """Power machine NAME on or off, or reset it."""
    changed = machines_op.power(ctx, name, action)
    output.note(f"machine '{name}' is {changed.power}")


@click.command("deploy")
@click.argument("clone")
@click.argument("machine_name", metavar="MACHINE", required=False)
@click.option("--new", is_flag=True,
              help="Create a new virtual machine fitting the clone's hardware profile.")
@click.option("--platform", help="Platform for --new [default: the only configured one].")
@click.pass_obj
def deploy(ctx, clone, machine_name, new, platform) -> None:
    """Deploy CLONE on MACHINE (or on a new virtual machine with --new) and boot it.

    \b
    Examples:
      encompass deploy web01 blade3
      encompass deploy web01 --new --platform kvm
    """
    image = deploy_op.deploy(ctx, clone, machine_name, new, platform)
    output.note(f"'{clone}' deployed on machine '{image.machine}'")
    try:
        target = machines_op.machine(ctx, image.machine)
        log = ctx.platform(target.platform).driver.console_log(target)
    except Exception:  # noqa: BLE001 - the console's place is a courtesy
        log = None
    if log:
        output.note(f"console log: {log}")


@click.command("undeploy")
@click.argument("clone")
@click.option("--remove-machine", is_flag=True, help="Also remove the virtual machine's definition.")
@click.pass_obj
def undeploy(ctx, clone, remove_machine) -> None:
    """Power off the machine running CLONE and detach the clone's volumes."""
    deploy_op.undeploy(ctx, clone, remove_machine)
    output.note(f"'{clone}' undeployed")


def register(cli: click.Group) -> None:
    for command in (discover, machine, deploy, undeploy):
        cli.add_command(command)
