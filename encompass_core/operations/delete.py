"""Deleting an image, refused while other images depend on it."""

from __future__ import annotations

from ..context import Context
from ..errors import Conflict, EncompassError
from ..model import Image, Volume
from ..store import Transaction
from . import holding


def dependents(tx: Transaction, image: Image) -> list[str]:
    """Names of the images that stop ``image`` from being deleted.

    A master is kept while any clone derives from it (lineage and baselining need it). A clone
    is kept while another image still reads through one of its volumes (copy-on-write).
    """
    names = [other.name for other in tx.dependents(image.name)
             if other.name != image.name and (image.is_master and other.master == image.name
                                              or any(v.backing and v.backing[0] == image.name
                                                     for v in other.reading_volumes))]
    # A clone still being made from it may not have its volumes yet.
    names += [child.name for child in tx.children(image.name)
              if child.state == "cloning" and child.name not in names and child.name != image.name]
    return names


def _refuse_with_dependents(tx: Transaction, image: Image) -> None:
    names = dependents(tx, image)
    if not names:
        return
    shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
    if image.is_master:
        raise Conflict(
            f"cannot delete master '{image.name}': {len(names)} clone(s) derive from it: {shown}. "
            "Delete those clones first"
        )
    raise Conflict(
        f"cannot delete clone '{image.name}': {len(names)} clone(s) read through it: {shown}. Delete "
        f"them first, or make them independent: encompass image flatten {names[0]}"
    )


def delete_image(ctx: Context, name: str) -> Image:
    """Delete image ``name`` and its volumes."""
    with holding.hold(ctx, name, "delete", check=_refuse_with_dependents) as held:
        held.dirty = True
        volumes = all_volumes(held.image)
        holding.delete_volumes(ctx, volumes)
        purge_leftovers(ctx, held.image)
        held.removed = True
        held.message = f"deleted with {len(volumes)} volume(s)"
    return held.result


def all_volumes(image: Image) -> list[Volume]:
    """Every volume an image holds: its own, a master's earlier versions', those a rebased
    clone keeps for a rollback, and those a killed removal left (each once)."""
    found: dict[tuple[str, str], Volume] = {}
    earlier = [v for version in image.versions for v in version.volumes]
    kept = list(image.previous.volumes) if image.previous else []
    for volume in [*image.volumes, *earlier, *kept, *image.removing]:
        found.setdefault((volume.pool, volume.location), volume)
    return list(found.values())


def purge_leftovers(ctx: Context, image: Image) -> list[str]:
    """Remove what pools still hold for ``image`` (half-made volumes and ``.partial`` files of a
    clone killed half-way), through each driver's ``cleanup``; say what was removed.

    Only the pools the image uses are touched; an image with no volume recorded (a clone killed
    before any was made) may have left something in any pool, and a pool that cannot be reached
    then is reported, not fatal."""
    used = {v.pool for v in image.volumes} | {j.pool for j in image.jobs}
    done: list[str] = []
    for pool_name in sorted(used or ctx.config.pools):
        try:
            done += ctx.pool(pool_name).driver.cleanup(image.name)
        except EncompassError as exc:
            if used:
                raise
            done.append(f"pool '{pool_name}' not checked for leftovers: {exc}")
    return done
