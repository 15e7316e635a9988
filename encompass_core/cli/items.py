"""``encompass master items ...``: the customization items of a master."""

from __future__ import annotations

from pathlib import Path

import click

from ..customization.platform_keys import PLATFORM_CUSTOMIZATION_KEYS
from ..errors import InvalidInput
from ..lazy import lazy_module
from . import output

items_mod = lazy_module("encompass_core.customization.items")
master_items = lazy_module("encompass_core.operations.master_items")


@click.group("items")
def items_group() -> None:
    """The customization items of a master: what its clones' customization changes.

    \b
    Item keys: a lowercase letter, then lowercase letters, digits, - _ . (1-64 characters).
    Types: file, regexp, bootscript, delete, cloud-init, service, network, kernel (plugins add
    more; see: items types). Any item may say --param on=hardware: applied again on migration.
    Example:
      encompass master items add base hostname --type file --path /etc/hostname \\
          --prompt "Host name" --default localhost
      encompass master items add base hosts --type regexp --path /etc/hosts \\
          --param 'pattern=^127\\.0\\.1\\.1\\s.*$' --param 'replacement=127.0.1.1\\t{value}'
    """


@items_group.command("add")
@click.argument("master_name", metavar="MASTER")
@click.argument("key")
@click.option("--type", "type_name", required=True, help="Item type: file, regexp, bootscript, ...")
@click.option("--path", required=True, help="Absolute path inside the volume, e.g. /etc/hostname.")
@click.option("--volume", type=click.IntRange(0), default=0, show_default=True, help="Volume index.")
@click.option("--partition", type=click.IntRange(1), help="Partition number (from 1) in the volume "
              "[default: the whole volume is one filesystem].")
@click.option("--prompt", default="", help="What --interactive asks.")
@click.option("--default", help="The value that un-customizes (offered by prompts).")
@click.option("--description", default="", help="What the item is for.")
@click.option("--secret", is_flag=True, help="The value is never stored nor shown (a password).")
@click.option("--optional", is_flag=True, help="A missing file or match is not an error.")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE",
              help="A parameter of the type (template, mode, owner, pattern, ...); repeatable.")
@click.option("--platform-key", type=click.Choice(PLATFORM_CUSTOMIZATION_KEYS),
              help="What the value is to a platform that customizes guests itself (a vSphere "
                   "customization spec): a clone whose items all have one is customized by the "
                   "platform at deploy when it can, in its files otherwise.")
@click.option("--position", type=click.IntRange(1), help="Insert at this position [default: last].")
@click.pass_obj
def items_add(ctx, master_name, key, type_name, path, volume, partition, prompt, default, description,
              secret, optional, params, platform_key, position) -> None:
    """Add item KEY to MASTER (items are applied in order)."""
    item = items_mod.build_item({"key": key, "type": type_name, "path": path, "volume": volume,
                                 "partition": partition, "prompt": prompt, "default": default,
                                 "description": description, "secret": secret, "optional": optional,
                                 "params": items_mod.parse_params(params), "platform_key": platform_key})
    changed = master_items.add_item(ctx, master_name, item, position)
    output.note(f"master '{master_name}': item '{key}' ({item.type}) added, "
                f"{len(changed.items)} item(s) in all")


def _item_row(item) -> dict:
    return {"key": item.key, "type": item.type, "volume": item.volume, "partition": item.partition,
            "path": item.path, "description": item.description, "prompt": item.prompt,
            "default": item.default, "secret": item.secret, "optional": item.optional,
            "params": dict(item.params), "platform_key": item.platform_key}


@items_group.command("list")
@click.argument("master_name", metavar="MASTER")
@click.option("--json", "as_json", is_flag=True, help="A JSON list of items.")
@click.pass_obj
def items_list(ctx, master_name, as_json) -> None:
    """List the items of MASTER, in the order they are applied."""
    with ctx.store.snapshot() as tx:
        found = tx.image(master_name)
    if not found.is_master:
        raise InvalidInput(f"'{master_name}' is a clone; its items are those of master '{found.master}'")
    rows = [_item_row(i) for i in found.items]
    if as_json:
        output.emit_json(rows)
        return
    if not rows:
        output.note(f"master '{master_name}' has no items yet: encompass master items add {master_name} "
                    "KEY --type file --path /etc/hostname")
        return
    output.table(("#", "KEY", "TYPE", "WHERE", "PATH", "DEFAULT", "PROMPT"),
                 [(n, r["key"], r["type"] + (" (secret)" if r["secret"] else ""),
                   f"vol {r['volume']}" + (f" part {r['partition']}" if r["partition"] else ""),
                   r["path"], r["default"], r["prompt"] or r["description"])
                  for n, r in enumerate(rows, 1)])


@items_group.command("remove")
@click.argument("master_name", metavar="MASTER")
@click.argument("keys", nargs=-1, required=True)
@click.pass_obj
def items_remove(ctx, master_name, keys) -> None:
    """Remove items KEYS from MASTER (clones keep what they applied, and can revert it)."""
    master_items.remove_items(ctx, master_name, keys)
    output.note(f"master '{master_name}': removed {', '.join(keys)}")


@items_group.command("move")
@click.argument("master_name", metavar="MASTER")
@click.argument("key")
@click.argument("position", type=click.IntRange(1))
@click.pass_obj
def items_move(ctx, master_name, key, position) -> None:
    """Move item KEY of MASTER to POSITION (1 is applied first)."""
    master_items.move_item(ctx, master_name, key, position)
    output.note(f"master '{master_name}': '{key}' is now item {position}")


@items_group.command("load")
@click.argument("master_name", metavar="MASTER")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False), required=False)
@click.option("--preset", help="Load a plugin's ready-made items instead of a FILE (see: items presets).")
@click.option("--volume", type=click.IntRange(0), help="With --preset: the volume index the items go to "
              "[default: the preset's, usually 0].")
@click.option("--partition", type=click.IntRange(1), help="With --preset: the partition (from 1) of "
              "the volume holding the files, e.g. 3 for Windows on a GPT disk.")
@click.option("--append", is_flag=True, help="Add to the existing items instead of replacing them.")
@click.pass_obj
def items_load(ctx, master_name, file, preset, volume, partition, append) -> None:
    """Set the items of MASTER from a TOML FILE of [[item]] tables, or from a --preset.

    \b
    [[item]]
    key = "hostname"
    type = "file"
    path = "/etc/hostname"
    prompt = "Host name"
    default = "localhost"
    [item.params]
    mode = "0644"
    \b
    A Windows master in one command (plugin encompass-sysprep):
      encompass master items load win2019 --preset windows --partition 2
    """
    if (file is None) == (preset is None):
        raise InvalidInput("give either a FILE of [[item]] tables or --preset NAME (see: encompass "
                           "master items presets)")
    if preset is None and (volume is not None or partition is not None):
        raise InvalidInput("--volume and --partition go with --preset; in a FILE, set them per item")
    if preset is not None:
        changed = master_items.load_preset(ctx, master_name, preset, append, volume, partition)
    else:
        changed = master_items.load_items(ctx, master_name, file, append)
    output.note(f"master '{master_name}': {len(changed.items)} item(s)")


@items_group.command("presets")
@click.option("--json", "as_json", is_flag=True, help="A JSON list.")
@click.pass_obj
def items_presets(ctx, as_json) -> None:
    """List the item presets plugins offer (for: items load MASTER --preset NAME)."""
    _list_records(ctx, ctx.host.item_presets(), "encompass_item_presets", "PRESET", as_json,
                  "no item presets (plugins offer them, e.g. encompass-sysprep's 'windows')")


def _list_records(ctx, records, hook: str, heading: str, as_json: bool, empty: str | None = None) -> None:
    """Registered records (item types, presets): name, plugin, description; a table or JSON."""
    rows = [{"name": n, "description": r.description, "plugin": ctx.host.provider(hook, n)}
            for n, r in sorted(records.items())]
    if as_json:
        output.emit_json(rows)
    elif not rows and empty:
        output.note(empty)
    else:
        output.table((heading, "PLUGIN", "DESCRIPTION"),
                     [(r["name"], r["plugin"], r["description"]) for r in rows])


@items_group.command("types")
@click.option("--json", "as_json", is_flag=True, help="A JSON list.")
@click.pass_obj
def items_types(ctx, as_json) -> None:
    """List the item types available (built in and from plugins)."""
    _list_records(ctx, ctx.host.customizers(), "encompass_customizers", "TYPE", as_json)


