"""``encompass ds4xxx show POOL``: what the subsystem behind a pool holds (arrays, logical
drives with their WWN, capacity and owner, hosts and their ports, LUN mappings)."""

from __future__ import annotations

import click

from encompass_core.cli import output
from encompass_core.errors import InvalidInput


@click.group("ds4xxx")
def ds4xxx() -> None:
    """IBM DS4000-series subsystems behind ds4xxx pools."""


@ds4xxx.command("show")
@click.argument("pool")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@click.pass_obj
def show(ctx, pool: str, as_json: bool) -> None:
    """Show what the subsystem behind POOL holds, as SMcli reports it."""
    from .driver import Ds4xxxStorageDriver

    driver = ctx.pool(pool).driver
    if not isinstance(driver, Ds4xxxStorageDriver):
        raise InvalidInput(f"pool '{pool}' is not a ds4xxx pool")
    found = driver.inventory()
    if as_json:
        output.emit_json(found)
        return
    output.note(f"subsystem {found['name']} ({found['wwn']}), iSCSI portal {found['portal']}")
    output.table(("ARRAY", "FREE BYTES"), [(a["number"], a["free"]) for a in found["arrays"]])
    output.table(("LOGICAL DRIVE", "KIND", "ARRAY", "BYTES", "OWNER", "WWN", "IMAGE", "MAPPED TO"),
                 [(d["label"], d["kind"], d["array"], d["capacity"], d["owner"], d["wwn"],
                   d["image"] or "", f"{d['host']} LUN {d['lun']}" if d["host"] else "")
                  for d in found["drives"]])
    output.table(("HOST", "PORTS", "ISCSI TARGET"),
                 [(h["label"], " ".join(h["ports"]), h["target"]) for h in found["hosts"]])
