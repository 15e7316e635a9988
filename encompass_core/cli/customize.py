"""Customization on the command line: ``customize``, ``uncustomize``, ``image ls`` and
``image cat``, and (from :mod:`.items`) ``master items ...``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import EncompassError, InvalidInput, NotFound
from ..lazy import lazy_module
from . import output
from .images import image, master

# Imported by the commands that call them: ``image show`` needs none of customizing.
customize_op = lazy_module("encompass_core.operations.customize")
fingerprint = lazy_module("encompass_core.customization.fingerprint")
volumes = lazy_module("encompass_core.customization.volumes")


# -- customize / uncustomize --------------------------------------------------------------
def _pairs(pairs, option: str, read_file: bool = False) -> dict[str, str]:
    values = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            # Not echoed: the text may be a secret typed without its key.
            raise InvalidInput(f"a {option} option has no '=': give {option} KEY=VALUE")
        if read_file:
            try:
                value = Path(value).read_text(encoding="utf-8")
            except OSError as exc:
                raise NotFound(f"{option} {key}: cannot read {value}: {exc.strerror}") from None
        values[key] = value
    return values


def _values_file(path: Path | None) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """``key = "value"`` for every clone, ``[clone.NAME]`` tables for one clone."""
    if path is None:
        return {}, {}
    import tomllib  # here: --help and commands without a values file do not parse TOML

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise NotFound(f"cannot read values file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"values file {path} is not valid TOML: {exc}") from None
    per_clone = data.pop("clone", {}) if isinstance(data.get("clone"), dict) else {}

    def scalars(table, where) -> dict[str, str]:
        out = {}
        for key, value in table.items():
            if isinstance(value, dict | list):
                raise InvalidInput(f"values file {path}: {where}{key} should be text, not a table or list")
            out[key] = str(value).lower() if isinstance(value, bool) else str(value)
        return out

    return scalars(data, ""), {n: scalars(t, f"clone.{n}.") for n, t in per_clone.items()}


def _targets(ctx, names, master_name) -> list[str]:
    if master_name:
        names = list(names) + customize_op.clones_of(ctx, master_name)
        if not names:
            raise InvalidInput(f"master '{master_name}' has no clones to customize")
    return list(dict.fromkeys(names))


def _prompt(ctx, names, values) -> None:
    missing = customize_op.needed_inputs(ctx, names, values)
    for name, items in missing.items():
        for item in items:
            label = item.prompt or item.description or item.key
            prefix = f"{name}: " if len(names) > 1 else ""
            values.setdefault(name, {})[item.key] = click.prompt(
                f"{prefix}{label} [{item.key}]", default=item.default, hide_input=item.secret,
                confirmation_prompt=item.secret, show_default=not item.secret, err=True)


def _report(results, verb: str, as_json: bool) -> None:
    failed = [r for r in results if r.state != "ready"]
    if as_json:
        output.emit_json(results)
    else:
        for result in results:
            if result.state == "ready":
                done = result.applied or result.reverted
                text = f"{verb} {', '.join(done)}" if done else "nothing to change"
                kept = f" (unchanged: {', '.join(result.unchanged)})" if result.unchanged else ""
                output.note(f"{result.name}: {text}{kept}")
    exit_if_failed(results, failed, verb, as_json)


def exit_if_failed(results, failed, verb: str, as_json: bool) -> None:
    """Say which of a bulk run's clones failed and why (unless printing JSON), then exit with
    the failures' own code (8 for confinement, 4 for a conflict...) when they agree."""
    if not failed:
        return
    if not as_json:
        output.note(f"{len(results) - len(failed)} of {len(results)} clone(s) {verb}, {len(failed)} failed:")
        for result in failed:
            output.note(f"  {result.name}: {result.error}")
    codes = {result.exit_code for result in failed}
    raise SystemExit(codes.pop() if len(codes) == 1 else EncompassError.exit_code)


@click.command("customize")
@click.argument("names", nargs=-1)
@click.option("--master", "master_name", help="Every clone of this master (besides NAMES).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="An item's value; '{clone}' in it becomes each clone's name. Repeatable. "
                   "Secrets given here show in the process list: prefer --values or -i.")
@click.option("--set-file", "set_files", multiple=True, metavar="KEY=PATH",
              help="An item's value read from a file (a script, user-data). Repeatable.")
@click.option("--values", "values_file", type=click.Path(path_type=Path, dir_okay=False),
              help="A TOML file: KEY = \"value\" for all, [clone.NAME] tables for one clone.")
@click.option("-i", "--interactive", is_flag=True,
              help="Ask for missing values (item prompts; secrets without echo).")
@click.option("--parallel", type=click.IntRange(1, 256), help="Clones customized at once.")
@click.option("--force", is_flag=True, help="Apply again even items applied with the same value.")
@click.option("--json", "as_json", is_flag=True, help="The result of each clone as JSON.")
@click.pass_obj
def customize(ctx, names, master_name, sets, set_files, values_file, interactive, parallel, force,
              as_json) -> None:
    """Customize clones NAMES: apply their master's items with the values given (or stored).

    \b
    Re-applying is idempotent: items applied with the same value are left alone.
    Examples:
      encompass customize web01 --set hostname=web01
      encompass customize --master base --set 'hostname={clone}' --parallel 8
      encompass customize db1 --interactive
    """
    targets = _targets(ctx, names, master_name)
    common, per_clone = _values_file(values_file)
    common.update(_pairs(sets, "--set"))
    common.update(_pairs(set_files, "--set-file", read_file=True))
    values = {n: {k: v.replace("{clone}", n) for k, v in {**common, **per_clone.get(n, {})}.items()}
              for n in targets}
    if interactive:
        _prompt(ctx, targets, values)
    with output.progress("customizing", len(targets)) as bar:
        task = bar.task_ids[0]
        results = customize_op.customize_images(ctx, targets, values, parallel,
                                                on_done=lambda r: bar.advance(task), force=force)
    _report(results, "applied", as_json)


@click.command("uncustomize")
@click.argument("names", nargs=-1)
@click.option("--master", "master_name", help="Every clone of this master (besides NAMES).")
@click.option("--item", "keys", multiple=True, metavar="KEY", help="Only this item; repeatable.")
@click.option("--parallel", type=click.IntRange(1, 256), help="Clones un-customized at once.")
@click.option("--json", "as_json", is_flag=True, help="The result of each clone as JSON.")
@click.pass_obj
def uncustomize(ctx, names, master_name, keys, parallel, as_json) -> None:
    """Revert the customization of clones NAMES: their files become their parent's again."""
    targets = _targets(ctx, names, master_name)
    with output.progress("un-customizing", len(targets)) as bar:
        task = bar.task_ids[0]
        results = customize_op.uncustomize_images(ctx, targets, keys, parallel,
                                                  on_done=lambda r: bar.advance(task))
    _report(results, "reverted", as_json)


# -- image ls / cat -----------------------------------------------------------------------
def _open(ctx, name, volume, partition):
    with ctx.store.snapshot() as tx:
        found = tx.image(name)
    return volumes.open_image_volume(ctx, found, volume, partition, writable=False)


_where = [
    click.option("--volume", type=click.IntRange(0), default=0, show_default=True, help="Volume index."),
    click.option("--partition", type=click.IntRange(1), help="Partition number (from 1)."),
]


def _with_where(func):
    for option in reversed(_where):
        func = option(func)
    return func


@image.command("ls")
@click.argument("name")
@click.argument("path", default="/")
@_with_where
@click.option("--json", "as_json", is_flag=True, help="A JSON list of entries.")
@click.pass_obj
def image_ls(ctx, name, path, volume, partition, as_json) -> None:
    """List directory PATH inside image NAME (read-only)."""
    with _open(ctx, name, volume, partition) as fs:
        info = fs.stat(path)
        names = fs.listdir(path) if info.kind == "dir" else [path.rstrip("/").rsplit("/", 1)[-1]]
        base = path if info.kind == "dir" else path.rsplit("/", 1)[0] or "/"
        rows = []
        for entry in names:
            st = fs.stat(f"{base.rstrip('/')}/{entry}")
            rows.append({"name": entry, "kind": st.kind, "mode": f"{st.mode:04o}", "uid": st.uid,
                         "gid": st.gid, "size": st.size, "target": st.target})
    if as_json:
        output.emit_json(rows)
        return
    output.table(("MODE", "UID", "GID", "SIZE", "NAME"),
                 [(f"{r['kind'][0] if r['kind'] != 'file' else '-'}{r['mode']}", r["uid"], r["gid"],
                   r["size"], r["name"] + (f" -> {r['target']}" if r["target"] else "")) for r in rows])


@image.command("cat")
@click.argument("name")
@click.argument("path")
@_with_where
@click.pass_obj
def image_cat(ctx, name, path, volume, partition) -> None:
    """Print file PATH inside image NAME (read-only), byte for byte."""
    with _open(ctx, name, volume, partition) as fs:
        data = fs.read(path)
    sys.stdout.buffer.write(data)
    sys.stdout.flush()


# -- image show ---------------------------------------------------------------------------
def status_rows(ctx, found) -> list[tuple[str, str]]:
    """Rows of ``image show`` about customization: items (masters), their status (clones)."""
    if found.is_master:
        return [(f"item {n}", f"{i.key}: {i.type} {i.path}" + (" (secret)" if i.secret else ""))
                for n, i in enumerate(found.items, 1)]
    with ctx.store.snapshot() as tx:
        parent = tx.find_image(found.master) if found.master else None
    items = list(parent.items) if parent else []
    keys = [i.key for i in items] + [k for k in found.applied if k not in {i.key for i in items}]
    secret = {i.key for i in items if i.secret}
    rows = []
    for key in keys:
        record = found.applied.get(key)
        kind = record["type"] if record else next(i.type for i in items if i.key == key)
        if record:
            secret_now = key in secret or record.get("item", {}).get("secret")
            shown = "(secret)" if secret_now else (
                f"= {found.inputs[key]!r}" if key in found.inputs and found.inputs[key] != "" else "")
            text = (f"applied {output.when(record.get('time'))}, "
                    f"fingerprint {fingerprint.short(record.get('fingerprint'))} {shown}")
            if key not in {i.key for i in items}:
                text += " (no longer an item of the master)"
        else:
            text = "not applied"
        rows.append((f"item {key}", f"{kind}: {text}"))
    return rows


def register(cli: click.Group) -> None:
    from .items import items_group

    master.add_command(items_group)
    for command in (customize, uncustomize):
        cli.add_command(command)
