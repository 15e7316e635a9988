"""The metadata store: which backend keeps it, and moving it to the other one."""

from __future__ import annotations

import click

from . import output


@click.group("store")
def store() -> None:
    """The metadata repository's backend ([store] in encompass.toml): tinydb or postgresql."""


@store.command("migrate")
@click.option("--to", "to", required=True, type=click.Choice(["postgresql", "tinydb"]),
              help="The backend to move the repository to.")
@click.option("--dsn-env", metavar="VARIABLE",
              help="With --to postgresql: the environment variable holding the database's DSN.")
@click.option("--dsn-file", metavar="PATH",
              help="With --to postgresql: a file (mode 0600) holding the database's DSN.")
@click.option("--replace", is_flag=True, help="Overwrite a PostgreSQL database that holds records already.")
@click.option("--json", "as_json", is_flag=True, help="A JSON object saying what was copied.")
@click.pass_obj
def migrate(ctx, to: str, dsn_env: str | None, dsn_file: str | None, replace: bool, as_json: bool) -> None:
    """Copy every image, event and machine to the other backend, check every document of the
    copy, and only then switch [store] in encompass.toml to it.

    \b
    The configured repository is only read, and writers wait while it is copied: an
    interrupted migration leaves it as it was, and in use. The DSN is read from a variable or
    a 0600 file, never from the command line, and is never printed.
      TEST_DSN='host=db1 dbname=encompass user=enc' \\
        encompass store migrate --to postgresql --dsn-env TEST_DSN
      encompass store migrate --to tinydb
    """
    from ..store import migrate as migrate_mod

    settings = migrate_mod.target_settings(to, dsn_env, dsn_file)
    with output.progress(f"copying to {to}", None) as bar:
        task = bar.task_ids[0]

        def advance(done: int, total: int) -> None:
            if hasattr(bar, "update"):
                bar.update(task, completed=done, total=total)

        done = migrate_mod.migrate(ctx.home, ctx.config, ctx.store, settings, replace=replace,
                                   progress=advance)
    if as_json:
        output.emit_json({"from": done.source, "to": done.target, "images": done.images,
                          "events": done.events, "machines": done.machines,
                          "switched": done.config_switched, "moved_aside": done.moved_aside})
        return
    output.note(f"copied {done.images} images, {done.events} events and {done.machines} machines from "
                f"{done.source} to {done.target}; every document checked")
    if done.moved_aside:
        output.note(f"the TinyDB files found in {ctx.home} were moved to {done.moved_aside}")
    if done.config_switched:
        output.note(f"{ctx.config.path} now uses {done.target}:")
    else:
        output.note(f"set these lines in {ctx.config.path} to use it (it was left unchanged):")
    for line in done.config_lines:
        output.note(f"  {line}")
    if done.source == "tinydb":
        output.note("the TinyDB files stay in place as they were (remove them once you no longer need them)")


def register(cli: click.Group) -> None:
    cli.add_command(store)
