"""The family tree of images: masters, their clones, clones of clones."""

from __future__ import annotations

from collections.abc import Iterable

from ..model import Image


def children_map(images: Iterable[Image]) -> dict[str | None, list[Image]]:
    """Images grouped by parent; roots (masters, orphans) under ``None``."""
    images = list(images)
    names = {i.name for i in images}
    tree: dict[str | None, list[Image]] = {}
    for image in images:
        parent = image.parent if image.parent in names else (
            image.master if image.master in names and image.master != image.name else None)
        tree.setdefault(parent, []).append(image)
    return tree

