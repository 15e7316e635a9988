"""Setting up and looking after the repository: init, pools, repair."""

from __future__ import annotations

import click

from ..lazy import lazy_module
from . import output

config_mod = lazy_module("encompass_core.config")
claims_op = lazy_module("encompass_core.operations.claims")
repair_op = lazy_module("encompass_core.operations.repair")


@click.command("init")
@click.option("--force", is_flag=True, help="Overwrite an existing encompass.toml with the default.")
@click.pass_obj
def init(ctx, force: bool) -> None:
    """Create ENCOMPASS_HOME with a default configuration and a local pool."""
    existed = (ctx.home / config_mod.CONFIG_NAME).exists()
    path = config_mod.write_default(ctx.home, force=force)
    pool = ctx.pool()
    try:
        pool.driver.root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise config_mod.home_error(ctx.home, exc) from None
    if existed and not force:
        output.note(f"{path} exists already; left as it is (--force replaces it)")
    else:
        output.note(f"created {path}")
    output.note(f"pool '{pool.name}' keeps its volumes in {pool.driver.root}")
    output.note("next: encompass master import NAME DISK_IMAGE_OR_DIRECTORY")


@click.group("pool")
def pool() -> None:
    """Storage pools (configured in encompass.toml)."""


@pool.command("list")
@click.option("--json", "as_json", is_flag=True, help="A JSON list of objects.")
@click.pass_obj
def pool_list(ctx, as_json: bool) -> None:
    """List the configured pools, their drivers and settings."""
    rows = [{"name": s.name, "driver": s.driver, "default": s.name == ctx.config.pool().name,
             "settings": s.settings} for s in ctx.config.pools.values()]
    if as_json:
        output.emit_json(rows)
        return
    output.table(("NAME", "DRIVER", "DEFAULT", "SETTINGS"),
                 [(r["name"], r["driver"], "yes" if r["default"] else "",
                   " ".join(f"{k}={v}" for k, v in r["settings"].items())) for r in rows])


@click.command("repair")
@click.option("--dry-run", is_flag=True, help="Only list what is stuck and what would be done.")
@click.option("--force", is_flag=True, help="Also take over images held by a process on another host.")
@click.option("--json", "as_json", is_flag=True,
              help='A JSON object: {"images": [...], "removals": [...], "claims": [...], '
                   '"leftovers": [...]}.')
@click.pass_obj
def repair(ctx, dry_run: bool, force: bool, as_json: bool) -> None:
    """Find images stuck in a transitional state (cloning, deploying, ...) whose owning process
    is gone, and move them to 'error' with the reason, so they can be retried or deleted (a
    clone never finished is removed with its leftovers). Remove again the volumes an operation
    that failed could not remove (a pool refused, or was down). End the helper processes
    (qemu-storage-daemon, debugfs, guestfish...), mounts and work files such processes left
    behind. Then check machines' claims on clones with their platforms: a clone a machine still
    runs is 'deployed' again, a claim the machine let go (or on a deleted image) is released.

    --json gives {"images": [...], "removals": [...], "claims": [...], "leftovers": [...]}."""
    leftovers = repair_op.clean_leftovers(ctx, dry_run=dry_run)
    stuck = repair_op.repair(ctx, dry_run=dry_run, force=force)
    removals = repair_op.finish_failed_removals(ctx, dry_run=dry_run)
    claimed = claims_op.reconcile(ctx, dry_run=dry_run)
    if as_json:
        output.emit_json({"images": stuck, "removals": removals, "claims": claimed,
                          "leftovers": leftovers})
        return
    if not stuck and not removals and not claimed and not leftovers:
        output.note("no image is stuck, every claim holds and no process left anything behind: "
                    "nothing to repair")
        return
    if stuck:
        output.table(("IMAGE", "STATE", "OPERATION", "PID", "HOST", "SINCE", "OWNER", "ACTION"),
                     [(s.name, s.state, s.operation, s.pid, s.host, s.since, s.owner, s.action)
                      for s in stuck])
    if removals:
        output.table(("IMAGE", "VOLUMES", "ACTION"),
                     [(r.name, ", ".join(r.volumes), r.action) for r in removals],
                     title="Volumes failed operations left to remove")
    if claimed:
        output.table(("MACHINE", "CLAIMS IMAGE", "FOUND", "ACTION"),
                     [(c.machine, c.image, c.finding, c.action) for c in claimed])
    if leftovers:
        output.table(("DEAD PROCESS", "HELPERS", "MOUNTS", "ACTION"),
                     [(left.pid, ", ".join(left.helpers) or "-", len(left.mounts), left.action)
                      for left in leftovers], title="Left behind by processes that died")


def register(cli: click.Group) -> None:
    for command in (init, pool, repair):
        cli.add_command(command)
