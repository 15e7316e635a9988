"""``delete``: remove a file (or symlink) from the image; takes no input value.

A missing file is fine (the item's aim is reached). Revert: the parent image's file comes back.
"""

from __future__ import annotations

from ...model import CustomizationItem
from ..access import FileAccess
from ..fsutil import restore
from ..items import check_params


class DeleteCustomizer:
    """Remove a file."""

    needs_value = False

    def validate(self, item: CustomizationItem) -> None:
        check_params(item, set())

    def apply(self, fs: FileAccess, item: CustomizationItem, value: str, clone_name: str) -> None:
        if fs.exists(item.path):
            fs.remove(item.path)

    def revert(self, fs: FileAccess, item: CustomizationItem, parent_fs: FileAccess | None) -> None:
        restore(fs, parent_fs, item.path)
