"""``regexp``: replace what a pattern matches in an existing file by the item's value.

Parameters: ``pattern`` (a Python regular expression, multi-line: ``^`` and ``$`` match at
each line), ``replacement`` (default ``"{value}"``; ``{value}``/``{clone}`` are replaced, and
``\\1``/``\\g<name>`` refer to the pattern's groups), ``count`` (replacements at most; 0, the
default, means all). No match, or no file, is an error unless the item is ``optional``.
Revert: the parent image's file.

Example: ``pattern = '^127\\.0\\.1\\.1\\s.*$'``, ``replacement = '127.0.1.1\\t{value}'``.
"""

from __future__ import annotations

import re

from ...errors import InvalidInput, NotFound
from ...model import CustomizationItem
from ..access import FileAccess
from ..fsutil import restore
from ..items import check_params, expand

PARAMS = {"pattern", "replacement", "count"}


def _compile(item: CustomizationItem) -> re.Pattern[str]:
    pattern = item.params.get("pattern")
    if not pattern:
        raise InvalidInput(f"item '{item.key}' (regexp) needs --param pattern=REGEXP")
    try:
        return re.compile(str(pattern), re.MULTILINE)
    except re.error as exc:
        raise InvalidInput(f"item '{item.key}': pattern {pattern!r} is not a valid regular expression: "
                           f"{exc}") from None


def _count(item: CustomizationItem) -> int:
    try:
        count = int(item.params.get("count", 0))
    except (TypeError, ValueError):
        count = -1
    if count < 0:
        raise InvalidInput(f"item '{item.key}': count={item.params.get('count')!r} must be 0 (all) or more")
    return count


class RegexpCustomizer:
    """Substitute the value where a pattern matches."""

    needs_value = True

    def validate(self, item: CustomizationItem) -> None:
        check_params(item, PARAMS)
        _compile(item)
        _count(item)

    def apply(self, fs: FileAccess, item: CustomizationItem, value: str, clone_name: str) -> None:
        pattern = _compile(item)
        try:
            raw = fs.read(item.path)
        except NotFound:
            if item.optional:
                return
            raise NotFound(f"item '{item.key}': {item.path} does not exist in the image, so pattern "
                           f"{pattern.pattern!r} cannot be replaced; fix the item's path, or mark it "
                           "optional") from None
        text = raw.decode("utf-8", errors="surrogateescape")
        # The value is literal text: escape backslashes so that only the template's own group
        # references (\1, \g<name>) are expanded.
        replacement = expand(str(item.params.get("replacement", "{value}")),
                             value.replace("\\", "\\\\"), clone_name)
        new_text, done = pattern.subn(lambda m: m.expand(replacement), text, count=_count(item))
        if not done:
            if item.optional:
                return
            raise NotFound(f"item '{item.key}': pattern {pattern.pattern!r} matches nothing in "
                           f"{item.path}; fix the pattern, or mark the item optional")
        data = new_text.encode("utf-8", errors="surrogateescape")
        if data != raw:
            fs.write(item.path, data)  # a replaced file keeps its mode and owner

    def revert(self, fs: FileAccess, item: CustomizationItem, parent_fs: FileAccess | None) -> None:
        restore(fs, parent_fs, item.path)
