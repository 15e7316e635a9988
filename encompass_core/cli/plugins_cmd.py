"""``encompass plugins``: what is installed, what it registers, and why a plugin failed."""

from __future__ import annotations

import click

from ..editions import CONTRACT_EDITION
from ..provenance import ORIGINS
from . import output

HELP = f"""List every plugin: where it comes from (ORIGIN), its distribution and version, the edition
of the driver contract it was written for (CONTRACT), the hooks it implements, its status
(active, failed, disabled) and, for a failed one, why.

\b
Origins:
  core       built into encompass-core
  plugins    plugins/ of the Encompass source: maintained and released with the core
  contrib    contrib/ of the Encompass source: written as a vendor would, by its authors
  elsewhere  any other distribution

This core speaks contract edition {CONTRACT_EDITION}; a plugin written for another is refused
(failed) with a message naming both. CONTRACT '-': the plugin does not say.

ENCOMPASS_PLUGINS=name1,name2 allow-lists external plugins; the rest show as disabled.
"""


@click.command("plugins", help=HELP)
@click.option("--json", "as_json", is_flag=True, help="A JSON list of objects (name, status, ...).")
@click.option("-v", "--verbose", is_flag=True, help="Also show the traceback of failed plugins.")
@click.pass_obj
def plugins(ctx, as_json: bool, verbose: bool) -> None:
    """``encompass plugins`` (the help is :data:`HELP`, which names the core's contract edition)."""
    infos = sorted(ctx.host.infos.values(), key=lambda i: (ORIGINS.index(i.origin), i.name))
    if as_json:
        output.emit_json([
            {"name": i.name, "status": i.status, "origin": i.origin, "distribution": i.distribution,
             "version": i.version, "contract_edition": i.contract_edition, "builtin": i.builtin,
             "hooks": list(i.hooks), "error": i.error}
            for i in infos
        ])
        return
    output.table(
        ("NAME", "STATUS", "ORIGIN", "DISTRIBUTION", "VERSION", "CONTRACT", "HOOKS / ERROR"),
        [(i.name, i.status, i.origin, i.distribution, i.version,
          "-" if i.contract_edition is None else str(i.contract_edition),
          ", ".join(h.removeprefix("encompass_") for h in i.hooks) if i.status == "active" else i.error)
         for i in infos],
    )
    if verbose or ctx.verbose:
        for info in infos:
            if info.traceback:
                output.out.print(f"\n[bold]{info.name}[/bold]:")
                output.out.print(info.traceback.rstrip(), markup=False)


def register(cli: click.Group) -> None:
    cli.add_command(plugins)
