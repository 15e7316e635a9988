"""Machines and deployment: discover, machine list/show/power, deploy, undeploy."""

from __future__ import annotations

import click

from ..lazy import lazy_module
from . import output

deploy_op = lazy_module("encompass_core.operations.deploy")
machines_op = lazy_module("encompass_core.operations.machines")
reconcile_op = lazy_module("encompass_core.operations.reconcile")


@click.command("discover")
@click.option("--platform", help="Ask only this platform (and no pool unless --pool).")
@click.option("--pool", help="Ask only this pool (and no platform unless --platform).")
@click.option("--apply", "apply_", is_flag=True,
              help="Change the records: record new machines and volumes, follow moved ones, mark "
                   "missing ones. Without it nothing is changed.")
@click.option("--seed", "seeds", multiple=True, metavar="ADDRESS",
              help="Instead, ask plugins to find platforms from this address or range (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="A JSON list: one object per finding.")
@click.pass_obj
def discover(ctx, platform, pool, apply_, seeds, as_json) -> None:
    """Compare what the platforms and pools really hold with the records.

    \b
    Machines are matched by identity (UUID, serial, MACs), volumes by location
    (and WWN), never by name alone. Each is reported as:
      matched      the same thing, where the records say
      moved        the same identity, another place or name
      missing      recorded, not found (marked with --apply, never deleted)
      new          found, unknown (recorded with --apply; a volume is attached
                   to the image it belongs to, or adopted as a master)
      conflict     records and facts disagree: left to you, with the command
      unreachable  a platform or pool that did not answer (exit code 7);
                   nothing of it is marked missing

    \b
    Examples:
      encompass discover                   # the report; changes nothing
      encompass discover --apply           # bring the records in line
      encompass discover --platform kvm --json
      encompass discover --seed 192.0.2.0/24   # propose [platforms.NAME] tables

    With --seed, plugins look for platforms not configured yet (SLP, probing) and propose
    [platforms.NAME] tables to add to encompass.toml.
    """
    if seeds:
        _propose(ctx, seeds, as_json)
        return
    findings = reconcile_op.reconcile(ctx, platform, pool, apply=apply_)
    if as_json:
        output.emit_json(findings)
    elif not findings:
        output.note(f"nothing to ask: no platform or pool is configured in {ctx.config.path}")
    else:
        output.table(("STATUS", "WHAT", "NAME", "WHERE", "WHY", "ACTION" if apply_ else "WITH --apply"),
                     [(f.status, f.subject, f.name, f.source, f.why, f.action) for f in findings])
        counts = {s: sum(f.status == s for f in findings) for s in reconcile_op.STATUSES}
        summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        changes = sum(f.status in ("moved", "new") or (f.status == "missing" and "since" not in f.action)
                      for f in findings)
        hint = "" if apply_ or not changes else "; nothing was changed: encompass discover --apply"
        output.note(summary + hint)
    if any(f.status == "unreachable" for f in findings):
        raise SystemExit(7)


def _propose(ctx, seeds, as_json) -> None:
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


@machine.command("forget")
@click.argument("name")
@click.pass_obj
def machine_forget(ctx, name) -> None:
    """Remove machine NAME's record (a stale one; the machine itself is not touched).

    Refused while the record claims an image. encompass discover --apply records the machine
    again if its platform still has it.
    """
    machines_op.forget(ctx, name)
    output.note(f"machine '{name}' forgotten")


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
