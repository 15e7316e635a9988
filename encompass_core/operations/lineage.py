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


def descendants(images: Iterable[Image], name: str) -> list[Image]:
    """Every image below ``name`` in the tree, depth first."""
    tree = children_map(images)
    found, todo = [], list(reversed(tree.get(name, [])))
    while todo:
        image = todo.pop()
        found.append(image)
        todo.extend(reversed(tree.get(image.name, [])))
    return found
