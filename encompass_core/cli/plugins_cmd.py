"""``encompass plugins``: what is installed, what it registers, and why a plugin failed."""

from __future__ import annotations

import click

from . import output


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="A JSON list of objects (name, status, ...).")
@click.option("-v", "--verbose", is_flag=True, help="Also show the traceback of failed plugins.")
@click.pass_obj
def plugins(ctx, as_json: bool, verbose: bool) -> None:
    """List every plugin: its distribution and version, the hooks it implements, its status
    (active, failed, disabled) and, for a failed one, why.

    ENCOMPASS_PLUGINS=name1,name2 allow-lists external plugins; the rest show as disabled.
    """
    infos = sorted(ctx.host.infos.values(), key=lambda i: (not i.builtin, i.name))
    if as_json:
        output.emit_json([
            {"name": i.name, "status": i.status, "distribution": i.distribution, "version": i.version,
             "builtin": i.builtin, "hooks": list(i.hooks), "error": i.error}
            for i in infos
        ])
        return
    output.table(
        ("NAME", "STATUS", "DISTRIBUTION", "VERSION", "HOOKS / ERROR"),
        [(i.name, i.status, i.distribution, i.version,
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
