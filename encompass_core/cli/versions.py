"""Master versions and rebasing on the command line: ``master update``, ``master versions``,
``master retire`` and ``rebase``."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import InvalidInput
from ..lazy import lazy_module
from . import output
from .customize import _pairs, _values_file, exit_if_failed
from .images import master

rebase_op = lazy_module("encompass_core.operations.rebase")
versions_op = lazy_module("encompass_core.operations.versions")


@master.command("update")
@click.argument("name")
@click.argument("files", nargs=-1, type=click.Path(path_type=Path))
@click.option("--from", "source", metavar="CLONE",
              help="A clone of NAME that was patched or upgraded: its volumes, its own customization "
                   "reverted, become the new version.")
@click.option("--import", "from_files", is_flag=True,
              help="New volumes given directly as FILES: one disk image or directory per volume that "
                   "is not a data volume, in order.")
@click.option("--json", "as_json", is_flag=True, help="Print the master's new record as JSON.")
@click.pass_obj
def master_update(ctx, name, files, source, from_files, as_json) -> None:
    """Make version N+1 of master NAME, from a patched clone or from new files.

    \b
    The new volumes are independent and read-only; data volumes are copied from the current
    version. Clones keep deriving from the version they were made of until rebased.
    Examples:
      encompass master update debian12 --from patched01
      encompass master update debian12 --import debian12-2.qcow2
      encompass image list --outdated && encompass rebase --all-outdated debian12
    """
    if bool(source) == from_files:
        raise InvalidInput("give either --from CLONE or --import FILE..., not both or neither")
    if from_files != bool(files):
        raise InvalidInput("files go with --import (encompass master update NAME --import FILE...)"
                           if files else "--import needs the new volumes' files: --import FILE...")
    with output.progress(f"updating {name}", None):
        if source:
            updated = versions_op.update_from_clone(ctx, name, source)
        else:
            updated = versions_op.update_from_files(ctx, name, files)
    if as_json:
        output.emit_json(updated)
        return
    output.note(f"master '{name}' is at version {updated.version} now ({len(updated.volumes)} volume(s)); "
                f"clones of earlier versions: encompass image list --outdated")


@master.command("versions")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="A JSON list: one object per kept version.")
@click.pass_obj
def master_versions(ctx, name, as_json) -> None:
    """List the kept versions of master NAME and the clones deriving from each."""
    found = versions_op.list_versions(ctx, name)
    if as_json:
        output.emit_json(found)
        return

    def clones(v) -> str:
        names = ", ".join(v.clones[:5]) + (f" and {len(v.clones) - 5} more" if len(v.clones) > 5 else "")
        kept = f"; kept for rollback by {len(v.kept_by)}" if v.kept_by else ""
        return f"{len(v.clones)}" + (f" ({names})" if v.clones else "") + kept

    output.table(("VERSION", "CURRENT", "CREATED", "VOLUMES", "SIZE", "CLONES", "FROM"),
                 [(v.number, "yes" if v.current else "", output.when(v.created), v.volumes,
                   output.size(v.size), clones(v), v.note) for v in found])


@master.command("retire")
@click.argument("name")
@click.option("--version", "number", type=click.IntRange(1), required=True, help="The version to remove.")
@click.pass_obj
def master_retire(ctx, name, number) -> None:
    """Remove version N of master NAME and its volumes; refused for the current version and
    while clones derive from it (rebase them first)."""
    gone = versions_op.retire_version(ctx, name, number)
    output.note(f"version {gone.number} of '{name}' retired ({len(gone.volumes)} volume(s) removed)")


@click.command("rebase")
@click.argument("names", nargs=-1)
@click.option("--version", "version", type=click.IntRange(1),
              help="The master version to rebuild on [default: the master's current one].")
@click.option("--all-outdated", "master_name", metavar="MASTER",
              help="Every clone of MASTER on an older version than its current one (besides NAMES).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="An item's value (secret values are never stored: give them again). Repeatable.")
@click.option("--values", "values_file", type=click.Path(path_type=Path, dir_okay=False),
              help="A TOML file: KEY = \"value\" for all, [clone.NAME] tables for one clone.")
@click.option("-i", "--interactive", is_flag=True,
              help="Ask for the values to give again (secrets without echo).")
@click.option("--mode", type=click.Choice(["cow", "full"]),
              help="How the new volumes are made [default: as the clone's were].")
@click.option("--parallel", type=click.IntRange(1, 256), help="Clones rebased at once.")
@click.option("--rollback", is_flag=True, help="Go back to the volumes the last rebase replaced.")
@click.option("--discard-old", is_flag=True, help="Remove the volumes the last rebase kept for a rollback.")
@click.option("--json", "as_json", is_flag=True, help="The result of each clone as JSON.")
@click.pass_obj
def rebase(ctx, names, version, master_name, sets, values_file, interactive, mode, parallel, rollback,
           discard_old, as_json) -> None:
    """Rebuild clones NAMES on another version of their master, customized as before.

    \b
    Each keeps its name, machine, history and lineage, and the data volumes its master marks
    (carried over untouched); its items are applied again with its recorded inputs (secret
    ones must be given again). A deployed clone is undeployed, rebased and redeployed. The old
    volumes stay until --discard-old, for --rollback.
    Examples:
      encompass rebase web01 --set rootpw=...
      encompass rebase --all-outdated debian12 --parallel 8 --values secrets.toml
      encompass rebase web01 --rollback
    """
    if rollback or discard_old:
        _rollback_or_discard(ctx, names, master_name, rollback, discard_old, as_json)
        return
    targets = list(names) + (rebase_op.all_outdated(ctx, master_name) if master_name else [])
    targets = list(dict.fromkeys(targets))
    if not targets:
        if master_name:
            output.note(f"no outdated clones of '{master_name}': nothing to rebase")
            if as_json:
                output.emit_json([])
            return
        raise InvalidInput("give clones to rebase, or --all-outdated MASTER")
    common, per_clone = _values_file(values_file)
    common.update(_pairs(sets, "--set"))
    values = {n: {k: v.replace("{clone}", n) for k, v in {**common, **per_clone.get(n, {})}.items()}
              for n in targets}
    if interactive:
        for name, items in rebase_op.needed_inputs(ctx, targets, version, values).items():
            for item in items:
                values[name][item.key] = click.prompt(
                    f"{name}: {item.prompt or item.description or item.key} [{item.key}]",
                    hide_input=item.secret, confirmation_prompt=item.secret, err=True)
    with output.progress("rebasing", len(targets)) as bar:
        task = bar.task_ids[0]
        results = rebase_op.rebase_images(ctx, targets, version, values, mode, parallel,
                                          on_done=lambda r: bar.advance(task))
    _report(results, as_json)


def _report(results, as_json: bool) -> None:
    failed = [r for r in results if r.state == "error"]
    if len(results) == 1 and failed and not as_json:  # one clone: one line, as other commands
        output.note(f"encompass: {failed[0].error}")
        raise SystemExit(failed[0].exit_code)
    if as_json:
        output.emit_json(results)
    else:
        for r in results:
            if r.state == "unchanged":
                output.note(f"{r.name}: on version {r.to_version} already")
            elif r.state != "error":
                output.note(f"{r.name}: version {r.from_version} -> {r.to_version}"
                            + (f", applied {', '.join(r.applied)}" if r.applied else "")
                            + (f", data volume(s) {', '.join(map(str, r.carried))} kept" if r.carried else "")
                            + (f", deployed again on {r.machine}" if r.machine else ""))
    exit_if_failed(results, failed, "rebased", as_json)


def _rollback_or_discard(ctx, names, master_name, rollback, discard_old, as_json) -> None:
    if rollback and discard_old:
        raise InvalidInput("give --rollback or --discard-old, not both")
    if master_name or not names:
        raise InvalidInput(f"--{'rollback' if rollback else 'discard-old'} takes clone names "
                           "(not --all-outdated)")
    done = []
    for name in names:
        if rollback:
            image = rebase_op.rollback(ctx, name)
            output.note(f"{name}: back on version {image.master_version}")
        else:
            image = rebase_op.discard_old(ctx, name)
            output.note(f"{name}: old volumes removed")
        done.append({"name": name, "state": image.state, "version": image.master_version})
    if as_json:
        output.emit_json(done)


def register(cli: click.Group) -> None:
    if "rebase" not in cli.commands:
        cli.add_command(rebase)
