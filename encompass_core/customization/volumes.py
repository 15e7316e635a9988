"""Opening the volumes of images for customization, through the registered volume openers.

Openers come from ``encompass_volume_openers`` (built-in ones included), tried by ascending
priority; the image's pool says where its volume is (``driver.volume_ref``).
"""

from __future__ import annotations

import attrs

from .. import rundir
from ..context import Context
from ..errors import ConfigError, NotFound
from ..model import Image
from ..store import Transaction
from .access import FileAccess, VolumeRef


def volume_ref(ctx: Context, image: Image, index: int, partition: int | None) -> VolumeRef:
    """Where volume ``index`` of ``image`` (and one of its partitions) is, for an opener."""
    volume = next((v for v in image.volumes if v.index == index), None)
    if volume is None:
        raise NotFound(f"image '{image.name}' has no volume {index} (it has {len(image.volumes)}); "
                       "fix the item's --volume")
    ref = ctx.pool(volume.pool).driver.volume_ref(volume)
    return attrs.evolve(ref, partition=partition)


def open_image_volume(ctx: Context, image: Image, index: int, partition: int | None,
                      writable: bool) -> FileAccess:
    """Open the files of one volume (or partition) of ``image``; the caller closes it.

    Helpers and work files go to this process's run directory under the home; the first
    open also cleans what processes killed earlier left there (:func:`rundir.sweep`), so a
    volume whose helper outlived its process is usable again without ``encompass repair``.
    """
    from .openers import open_volume

    rundir.use_home(ctx.home)
    rundir.sweep_once(ctx.home)

    openers = []
    for record in ctx.host.volume_openers():
        settings = ctx.config.openers.get(record.name, {})
        try:
            openers.append(record.factory(**settings))
        except TypeError as exc:
            raise ConfigError(f"{ctx.config.path}: [openers.{record.name}] has a setting the "
                              f"opener does not take ({exc})") from None
    return open_volume(volume_ref(ctx, image, index, partition), writable, openers)


def revert_source(tx: Transaction, image: Image, key: str) -> Image | None:
    """The nearest ancestor of ``image`` that does not have item ``key`` applied: the parent
    clone, its parent..., else the master. Its files are what stood there before. None when
    no ancestor is left (a full clone whose parent and master were deleted)."""
    seen = {image.name}
    name = image.parent
    while name and name not in seen:
        seen.add(name)
        ancestor = tx.find_image(name)
        if ancestor is None:
            break
        if key not in ancestor.applied:
            return ancestor
        name = ancestor.parent
    if image.master and image.master not in seen:
        return tx.find_image(image.master)
    return None
