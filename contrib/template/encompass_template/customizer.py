"""The customization item type of encompass-template: writes the item's value as one line of
the file the item names (a banner, a site name), and restores the file on revert.

An item type implements what :mod:`encompass_core.customization.items` describes:
``needs_value``, ``validate``, ``apply`` and ``revert``, reaching files only through the
:class:`~encompass_core.customization.access.FileAccess` it is given, which keeps every path
inside the volume. Never put the value in an error message: it may be a secret.
"""

from __future__ import annotations

from encompass_core.customization.access import FileAccess
from encompass_core.customization.fsutil import restore, write_file
from encompass_core.customization.items import check_params
from encompass_core.errors import InvalidInput
from encompass_core.model import CustomizationItem

#: The parameters an item of this type may carry (``--param NAME=VALUE``).
PARAMS = {"prefix"}


class TemplateCustomizer:
    """Write ``PREFIX VALUE`` as the whole content of the item's file."""

    #: The item takes a value (given at clone time, or asked for).
    needs_value = True

    def validate(self, item: CustomizationItem) -> None:
        """Raise InvalidInput when the item's definition cannot work."""
        check_params(item, PARAMS)
        if not item.path or item.path.endswith("/"):
            raise InvalidInput(f"item '{item.key}': give the path of the file to write (--path)")

    def apply(self, fs: FileAccess, item: CustomizationItem, value: str, clone_name: str) -> None:
        """Make the item's change in ``fs`` (which holds the un-customized file)."""
        prefix = str(item.params.get("prefix", ""))
        line = f"{prefix} {value}" if prefix else value
        write_file(fs, item.path, f"{line}\n".encode())

    def revert(self, fs: FileAccess, item: CustomizationItem, parent_fs: FileAccess | None) -> None:
        """Undo the item's change in ``fs``: the parent image's file, or none if it had none."""
        restore(fs, parent_fs, item.path)
