"""Masters, clones and the image repository: import, clone, list, show, tree, history, delete."""

from __future__ import annotations

from pathlib import Path

import click

from ..lazy import lazy_module
from ..model import ImageSummary
from . import output

# Imported by the commands that call them (lazy_module): ``image list`` needs none of cloning.
clone_op = lazy_module("encompass_core.operations.clone")
delete_op = lazy_module("encompass_core.operations.delete")
history = lazy_module("encompass_core.operations.history")
holding = lazy_module("encompass_core.operations.holding")
importing = lazy_module("encompass_core.operations.importing")
lineage = lazy_module("encompass_core.operations.lineage")
profiles = lazy_module("encompass_core.operations.profiles")
versions = lazy_module("encompass_core.operations.versions")
bulk = lazy_module("encompass_core.store.bulk")


def _image_row(image: ImageSummary, latest: dict | None = None) -> dict:
    """A listing's row; ``latest`` (master name -> current version) adds whether a clone is
    outdated (derives from an older version than its master's current one)."""
    newest = image.version if image.is_master else (latest or {}).get(image.master)
    return {
        "name": image.name,
        "kind": image.kind,
        "state": image.state,
        "version": image.version if image.is_master else image.master_version,
        "latest": newest,
        "outdated": versions.is_outdated(image, latest or {}),
        "master": image.master,
        "parent": image.parent,
        "machine": image.machine,
        "pool": ",".join(image.pools),
        "volumes": image.volumes,
        "size": image.size,
        "error": image.error,
    }


# -- master -------------------------------------------------------------------------------
@click.group("master")
def master() -> None:
    """Master images: imported once, cloned many times, never used directly."""


@master.command("import")
@click.argument("name")
@click.argument("sources", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--pool", help="Pool to keep the master in [default: the configured default].")
@click.option("--hw", multiple=True, metavar="KEY=VALUE",
              help="Hardware profile: memory=2G, cpus=2, arch=x86_64, firmware=bios|uefi, "
                   "platforms=kvm,xen; other keys are kept as they are. Repeatable.")
@click.option("--sw", multiple=True, metavar="KEY=VALUE",
              help="Software profile: os=debian, version=12, description=...; repeatable.")
@click.option("--data-volume", "data_volumes", multiple=True, type=click.IntRange(0), metavar="N",
              help="Volume N (from 0, in the order of SOURCES) holds the functionality's data, not "
                   "its software: a rebase carries each clone's own over untouched. Repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print the new master as JSON.")
@click.pass_obj
def master_import(ctx, name, sources, pool, hw, sw, data_volumes, as_json) -> None:
    """Import NAME from SOURCES: one disk image file (raw or qcow2) or directory tree (a root
    filesystem, as for NFS roots) per volume, in order. The pool keeps its own read-only copy.

    \b
    Examples:
      encompass master import debian12 debian12.qcow2 --hw memory=1G --sw os=debian
      encompass master import db system.qcow2 data.raw --data-volume 1
    """
    hardware = profiles.hardware(hw)
    software = profiles.software(sw)
    total = sum(p.stat().st_size for p in sources if p.is_file())
    with output.progress(f"importing {name}", total or None) as bar:
        task = bar.task_ids[0]
        image = importing.import_master(ctx, name, sources, pool, hardware, software,
                                        progress=lambda n: bar.advance(task, n), data_volumes=data_volumes)
    if as_json:
        output.emit_json(_image_row(ImageSummary.of(image)))
        return
    output.note(f"imported master '{image.name}' version {image.version}: "
                f"{len(image.volumes)} volume(s), {output.size(sum(v.size for v in image.volumes))}")


@master.command("list")
@click.option("--json", "as_json", is_flag=True, help="A JSON list of objects.")
@click.pass_obj
def master_list(ctx, as_json) -> None:
    """List the masters (encompass image list shows clones too)."""
    _list(ctx, as_json, kind="master")


# -- clone --------------------------------------------------------------------------------
@click.command("clone")
@click.argument("source")
@click.argument("names", nargs=-1)
@click.option("--count", type=int, help="Make N clones named PREFIX1 .. PREFIXN.")
@click.option("--prefix", help="Name prefix for --count.")
@click.option("--mode", type=click.Choice(["cow", "full"]),
              help="cow: a copy-on-write overlay (instant, reads through SOURCE); full: an "
                   "independent copy [default: from encompass.toml, else cow].")
@click.option("--pool", help="Pool for the clones [default: the configured default].")
@click.option("--parallel", type=click.IntRange(1, 256),
              help="Clones made at once (bounded by the pool's concurrency).")
@click.option("--json", "as_json", is_flag=True, help="Print the result of each clone as JSON.")
@click.pass_obj
def clone(ctx, source, names, count, prefix, mode, pool, parallel, as_json) -> None:
    """Clone SOURCE (a master or a clone) into NAMES, or --count N --prefix P.

    \b
    Examples:
      encompass clone debian12 web01 web02
      encompass clone debian12 --count 100 --prefix node --parallel 8
      encompass clone web01 web01-test --mode full
    """
    wanted = clone_op.names_for(names, count, prefix)
    with output.progress(f"cloning {source}", len(wanted)) as bar:
        task = bar.task_ids[0]
        results = clone_op.clone_images(ctx, source, wanted, mode, pool, parallel,
                                        on_done=lambda r: bar.advance(task),
                                        on_bytes=None if as_json else output.CopyMeter())
    failed = [r for r in results if r.state != "ready"]
    if as_json:
        output.emit_json(results)
    else:
        for result in results:
            if result.copied and result.state == "ready":
                output.note(f"{result.name}: streamed {output.size(result.copied)} between pools in "
                            f"{result.seconds:.1f} s ({output.rate(result.copied, result.seconds)})")
        made = len(results) - len(failed)
        output.note(f"{made} clone(s) of '{source}' ready" + (f", {len(failed)} failed:" if failed else ""))
        for result in failed:
            output.note(f"  {result.name}: {result.error}")
    if failed:
        raise SystemExit(7)


# -- image --------------------------------------------------------------------------------
@click.group("image")
def image() -> None:
    """Every image, masters and clones: list, show, tree, history, delete, flatten."""


def _list(ctx, as_json: bool, kind: str | None = None, master_name: str | None = None,
          outdated: bool = False) -> None:
    # Thousands of images and their rows are objects that live until the listing is printed:
    # the cycle collector would only walk them again and again.
    with bulk.collector_paused(), ctx.store.snapshot() as tx:
        if master_name is None:
            images = tx.summaries(kind="clone" if outdated else kind)
        else:  # the master and its clones, asked as such
            master = tx.find_image(master_name)
            found = ([ImageSummary.of(master)] if master else []) + tx.summaries(master=master_name)
            images = [i for i in found if kind is None or i.kind == kind]
        latest = {i.name: i.version for i in images if i.is_master}
        latest.update(versions.latest_versions(tx, [i for i in images if i.master not in latest]))
        rows = [_image_row(i, latest) for i in images]
    if outdated:
        rows = [r for r in rows if r["outdated"]]
    if as_json:
        output.emit_rows(rows)
        return
    if not rows:
        output.note("no outdated clones: every clone derives from its master's current version" if outdated
                    else "no images yet: encompass master import NAME DISK_IMAGE_OR_DIRECTORY")
        return
    output.table(("NAME", "KIND", "STATE", "VERSION", "MASTER", "PARENT", "POOL", "SIZE", "MACHINE"),
                 [(r["name"], r["kind"], r["state"], _version_text(r), r["master"], r["parent"], r["pool"],
                   output.size(r["size"]), r["machine"]) for r in rows])


def _version_text(row: dict) -> str:
    if row["kind"] == "master" or row["version"] is None:
        return str(row["version"] or "")
    return f"{row['version']} of {row['latest']}" + (" (outdated)" if row["outdated"] else "")


@image.command("list")
@click.option("--json", "as_json", is_flag=True,
              help="A JSON list of objects: name, kind, state, version, master, parent, ...")
@click.option("--kind", type=click.Choice(["master", "clone"]), help="Only masters or only clones.")
@click.option("--master", "master_name", help="Only this master and the clones derived from it.")
@click.option("--outdated", is_flag=True,
              help="Only clones of an older version than their master's current one (rebase them: "
                   "encompass rebase --all-outdated MASTER).")
@click.pass_obj
def image_list(ctx, as_json, kind, master_name, outdated) -> None:
    """List images with their kind, state, lineage, version and size."""
    _list(ctx, as_json, kind, master_name, outdated)


@image.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="The whole record as JSON.")
@click.pass_obj
def image_show(ctx, name, as_json) -> None:
    """Show everything recorded of image NAME: lineage, profiles, volumes, state."""
    with ctx.store.snapshot() as tx:
        found = tx.image(name)
        master = None if found.is_master else tx.find_image(found.master or "")
    if as_json:
        output.emit_json(found)
        return
    rows = [("name", found.name), ("kind", found.kind), ("state", found.state)]
    if found.error:
        rows.append(("error", found.error))
    if found.is_master:
        numbers = [v.number for v in versions.kept(found)]
        rows.append(("version", f"{found.version} (kept: {', '.join(map(str, numbers))})"))
        if found.data_volumes:
            rows.append(("data volumes", ", ".join(map(str, found.data_volumes))))
    else:
        latest = master.version if master is not None else None
        outdated = latest is not None and (found.master_version or 0) < latest
        of = f" of {latest}" if latest is not None else " (master gone)"
        rows += [("master", f"{found.master}, version {found.master_version}{of}"
                  + (f" (outdated: encompass rebase {found.name})" if outdated else "")),
                 ("parent", found.parent)]
        if found.previous is not None:
            rows.append(("before rebase", f"version {found.previous.master_version}, "
                         f"{len(found.previous.volumes)} volume(s) kept (encompass rebase {found.name} "
                         "--rollback | --discard-old)"))
    if found.owner:
        rows.append(("held by", f"{found.owner.operation}, pid {found.owner.pid} on {found.owner.host} "
                                f"since {found.owner.since}"))
    if found.removing:  # its record no longer names them: they go when that operation ends
        rows.append(("removing", "; ".join(f"{v.location} (pool '{v.pool}')" for v in found.removing)
                     + (" (if that process died: encompass repair)" if found.owner else
                        " (the operation failed: encompass repair removes them once the pool can)")))
    if found.redeploy_on:
        by = found.redeploy_by
        rows.append(("redeploy on", f"machine '{found.redeploy_on}', once the "
                     f"{by.operation if by else 'rebase'} ends"
                     + (f" (process {by.pid} on {by.host}; if it died: encompass repair)" if by else "")))
    if found.machine:
        rows.append(("machine", found.machine))
    if not found.is_master:
        ran = history.where_it_ran(ctx, found.name)
        if ran:
            rows.append(("has run on", ", ".join(f"{machine} ({platform}, from {output.when(time)})"
                                                 for time, machine, platform in ran)))
    hw = found.hardware
    rows.append(("hardware", f"{hw.memory_mib} MiB, {hw.cpus} CPU(s), {hw.arch}, {hw.firmware}"
                 + (f", platforms {','.join(hw.platforms)}" if hw.platforms else "")
                 + "".join(f", {k}={v}" for k, v in hw.extra.items())))
    sw = found.software
    text = " ".join(x for x in (sw.os, sw.version, sw.description) if x)
    text += "".join(f", {k}={v}" for k, v in sw.extra.items())
    rows.append(("software", text or "-"))
    for volume in found.volumes:
        backing = f", reads through {volume.backing[0]} (depth {volume.depth})" if volume.backing else ""
        readonly = ", read-only" if volume.readonly else ""
        readonly += f", MISSING since {output.when(volume.missing)}" if volume.missing else ""
        rows.append((f"volume {volume.index}", f"{volume.format} {output.size(volume.size)} in pool "
                     f"'{volume.pool}': {volume.location}{backing}{readonly}"))
    from .customize import status_rows

    rows += status_rows(ctx, found)
    rows += [("created", output.when(found.created)), ("updated", output.when(found.updated))]
    output.table(("FIELD", "VALUE"), rows)


@image.command("tree")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True,
              help="Nested JSON: each image's row (version, latest, outdated...) with its children.")
@click.pass_obj
def image_tree(ctx, name, as_json) -> None:
    """Show masters and the clones derived from them (clones of clones nested), with the
    version each derives from and which are outdated."""
    # Summaries, as image list reads them; whole records only for the masters, whose kept
    # versions the tree shows (10,000 clones converted whole were most of its time).
    with bulk.collector_paused(), ctx.store.snapshot() as tx:
        images = tx.summaries()
        masters = {m.name: m for m in tx.images(kind="master")}
        if name:
            tx.image(name)
    latest = {i.name: i.version for i in images if i.is_master}
    tree = lineage.children_map(images)
    roots = [i for i in images if i.name == name] if name else tree.get(None, [])
    if as_json:
        def nested(i) -> dict:
            children = [nested(c) for c in tree.get(i.name, [])]
            return {**_image_row(i, latest), "children": children}

        output.emit_json([nested(r) for r in roots])
        return
    if not roots:
        output.note("no images yet: encompass master import NAME DISK_IMAGE_OR_DIRECTORY")
        return

    def label(i) -> tuple[str, str]:
        if i.is_master:
            kept = [v.number for v in versions.kept(masters[i.name])]
            what = f"master v{i.version}" + (
                f", versions kept: {', '.join(map(str, kept))}" if kept != [i.version] else "")
        else:
            what = f"clone of v{i.master_version}" + (
                f" (outdated: v{latest[i.master]} is out)" if versions.is_outdated(i, latest) else "")
        extra = f" on {i.machine}" if i.machine else ""
        return i.name, f"{what}, {i.state}{extra}"

    output.tree(roots, lambda i: tree.get(i.name, []), label)


@image.command("history")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="A JSON list of events.")
@click.option("--last", type=click.IntRange(min=1), default=None,
              help="Only the last N events (a long history is read a page at a time).")
@click.pass_obj
def image_history(ctx, name, as_json, last) -> None:
    """Show every state change and operation result of image NAME (kept after deletion)."""
    with ctx.store.snapshot() as tx:
        if last is None:
            events = tx.events(name)
        else:
            events = tx.events(name, offset=max(0, tx.count_events(name) - last), limit=last)
        if not events:
            tx.image(name)
    if as_json:
        output.emit_json(events)
        return
    output.table(("TIME", "OPERATION", "FROM", "TO", "MESSAGE"),
                 [(output.when(e.time), e.operation, e.from_state, e.to_state, e.message) for e in events])


@image.command("delete")
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def image_delete(ctx, names) -> None:
    """Delete images and their volumes. A master with clones, or a clone that other clones
    read through, is refused (naming them)."""
    for name in names:
        delete_op.delete_image(ctx, name)
        output.note(f"deleted '{name}'")


@image.command("flatten")
@click.argument("name")
@click.pass_obj
def image_flatten(ctx, name) -> None:
    """Make clone NAME independent: copy into it what it reads through its parent."""
    clone_op.flatten_image(ctx, name)
    output.note(f"'{name}' no longer reads through its parent")


@image.command("disable")
@click.argument("name")
@click.pass_obj
def image_disable(ctx, name) -> None:
    """Keep image NAME but refuse to clone or deploy it until enabled."""
    holding.change_state(ctx, name, "disabled")
    output.note(f"'{name}' disabled")


@image.command("enable")
@click.argument("name")
@click.pass_obj
def image_enable(ctx, name) -> None:
    """Make a disabled image NAME ready again."""
    holding.change_state(ctx, name, "ready")
    output.note(f"'{name}' ready")


def register(cli: click.Group) -> None:
    for command in (master, clone, image):
        cli.add_command(command)

