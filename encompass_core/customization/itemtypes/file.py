"""``file``: write a file whose content is the item's value (or a template holding it).

Parameters: ``template`` (default ``"{value}\\n"``: the value and a newline, as
``echo VALUE > FILE`` would write; ``{value}`` and ``{clone}`` are replaced), ``mode``
(octal, e.g. ``0600``), ``owner`` (numeric ``UID[:GID]``). Missing parent directories are
made. Revert: the parent image's file (bytes, mode, owner), or no file if it had none.
"""

from __future__ import annotations

from ...model import CustomizationItem
from ..access import FileAccess
from ..fsutil import parse_mode, parse_owner, restore, write_file
from ..items import check_params, expand

PARAMS = {"template", "mode", "owner"}


class FileCustomizer:
    """Write the value into a file."""

    needs_value = True

    def validate(self, item: CustomizationItem) -> None:
        check_params(item, PARAMS)
        parse_mode(item)
        parse_owner(item)

    def apply(self, fs: FileAccess, item: CustomizationItem, value: str, clone_name: str) -> None:
        template = str(item.params.get("template", "{value}\n"))
        uid, gid = parse_owner(item)
        write_file(fs, item.path, expand(template, value, clone_name).encode(),
                   mode=parse_mode(item), uid=uid, gid=gid)

    def revert(self, fs: FileAccess, item: CustomizationItem, parent_fs: FileAccess | None) -> None:
        restore(fs, parent_fs, item.path)
