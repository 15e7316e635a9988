"""Opening the volumes of images for customization, through the registered volume openers.

Openers come from ``encompass_volume_openers`` (built-in ones included), tried by ascending
priority, on what the image's pool exposes of the volume (``StorageDriver.expose``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any

import attrs

from .. import rundir
from ..context import Context
from ..errors import ConfigError, NotFound
from ..model import Image
from ..store import Transaction
from .access import FileAccess


class _ExposedAccess:
    """A volume's files, opened while its pool exposes the volume; closing the files releases
    the volume too (unmap, close, upload), even when closing the files fails."""

    def __init__(self, files: FileAccess, release: contextlib.ExitStack) -> None:
        self._files = files
        self._release = release

    def __getattr__(self, name: str) -> Any:
        return getattr(self._files, name)

    def close(self) -> None:
        with self._release:
            self._files.close()

    def __enter__(self) -> _ExposedAccess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open_image_volume(ctx: Context, image: Image, index: int, partition: int | None,
                      writable: bool) -> FileAccess:
    """Open the files of one volume (or partition) of ``image``; the caller closes it.

    The volume's pool exposes it on this server first (``StorageDriver.expose``); the first
    opener, by priority, that can open what it exposes opens it. Helpers and work files go to
    this process's run directory under the home; the first open also cleans what processes
    killed earlier left there (:func:`rundir.sweep`), so a volume whose helper outlived its
    process is usable again without ``encompass repair``.
    """
    from .openers import open_volume

    rundir.use_home(ctx.home)
    rundir.sweep_once(ctx.home)
    volume = next((v for v in image.volumes if v.index == index), None)
    if volume is None:
        raise NotFound(f"image '{image.name}' has no volume {index} (it has {len(image.volumes)}); "
                       "fix the item's --volume")
    openers = []
    for record in ctx.host.volume_openers():
        settings = ctx.opener_settings(record)
        try:
            openers.append(record.factory(**settings))
        except TypeError as exc:
            raise ConfigError(f"{ctx.config.path}: [openers.{record.name}] has a setting the "
                              f"opener does not take ({exc})") from None
    with contextlib.ExitStack() as release:
        ref = release.enter_context(ctx.pool(volume.pool).driver.expose(volume, writable))
        files = open_volume(attrs.evolve(ref, partition=partition), writable, openers)
        return _ExposedAccess(files, release.pop_all())


def close_all(opened: Iterable[FileAccess]) -> None:
    """Close every opened volume; the first error is raised once all are closed."""
    errors = []
    for files in opened:
        try:
            files.close()
        except Exception as exc:  # noqa: BLE001 - close the others, then report
            errors.append(exc)
    if errors:
        raise errors[0]


def revert_source(tx: Transaction, image: Image, key: str) -> Image | None:
    """The nearest ancestor of ``image`` that does not have item ``key`` applied: the parent
    clone, its parent..., else the master as it was at the clone's version. Its files are what
    stood there before. An ancestor on another master version (the clone was rebased) is not:
    the master's files of the clone's version are. None when no ancestor is left (a full clone
    whose parent and master were deleted)."""
    seen = {image.name}
    name = image.parent
    while name and name not in seen:
        seen.add(name)
        ancestor = tx.find_image(name)
        if ancestor is None or ancestor.is_master or ancestor.master_version != image.master_version:
            break
        if key not in ancestor.applied:
            return ancestor
        name = ancestor.parent
    master = tx.find_image(image.master) if image.master else None
    return master.at_version(image.master_version) if master is not None else None
