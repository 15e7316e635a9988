"""The links a ``service`` item plans, checked against the image before anything is written."""

from __future__ import annotations

import posixpath
import re

from ...errors import Conflict
from ...model import CustomizationItem
from ..access import FileAccess

SERVICE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9@_.+-]*")


def inside(root: str, path: str) -> str:
    """``path`` of the guest whose root is ``root`` in the volume."""
    return posixpath.normpath(posixpath.join(root, path.lstrip("/")))


class LinkPlan:
    """Links to make (target) or remove (None), checked before anything is written."""

    def __init__(self, fs: FileAccess, item: CustomizationItem) -> None:
        self.fs = fs
        self.item = item
        self.links: dict[str, str | None] = {}

    def at(self, path: str) -> str:
        return inside(self.item.path, path)

    def current(self, path: str) -> tuple[str, str | None] | None:
        """(kind, link target) of what stands at ``path`` now, or None."""
        if self.path_exists(path):
            info = self.fs.stat(path)
            return info.kind, info.target
        return None

    def path_exists(self, path: str) -> bool:
        return self.fs.exists(path)

    def listdir(self, path: str) -> list[str]:
        if not self.fs.exists(path) or self.fs.stat(path).kind != "dir":
            return []
        return self.fs.listdir(path)

    def link(self, path: str, target: str | None) -> None:
        found = self.current(path)
        if found is not None and found[0] != "symlink":
            what = "directory" if found[0] == "dir" else "file"
            raise Conflict(f"item '{self.item.key}': {path} is a {what}, not a link; move it "
                           "away, the item only makes and removes links")
        if (found[1] if found else None) != target:
            self.links[path] = target
