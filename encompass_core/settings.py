"""Settings that drivers and openers declare, checked before anything runs.

Every storage driver, platform driver and volume opener declares the settings its
``[pools.NAME]``, ``[platforms.NAME]`` or ``[openers.NAME]`` table may hold, as
:class:`Setting` records on its registration record. :func:`check_table` checks one table
against them: an unknown key, a value of the wrong type or out of range, a missing required
key, or a secret written literally is one line naming the file, the table and the key.

A secret setting (``secret=True``) is never given in the file: the table names where to read
it, ``KEY_env = "VARIABLE"`` or ``KEY_file = "path"`` (a file of mode 0600); the driver reads
it with :func:`encompass_core.config.secret` when it needs it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from .convert import tuple_of
from .errors import ConfigError

#: How a setting's expected type is named in messages.
TYPE_NAMES = {str: "text in quotes", int: "a whole number", float: "a number", bool: "true or false",
               list: "a list", dict: "a table"}


@attrs.frozen
class Setting:
    """One setting a driver or opener takes.

    ``type`` is ``str``, ``int``, ``float`` (an integer is accepted too), ``bool``, ``list``
    or ``dict``. ``choices`` limits a value to those given; ``minimum`` bounds a number from
    below. A ``secret`` setting is read through ``KEY_env`` or ``KEY_file``, never given
    literally. ``required`` settings (or, for a secret, one of its two sources) must be there.
    """

    name: str
    type: type = str
    default: Any = None
    help: str = ""
    secret: bool = False
    required: bool = False
    choices: tuple[Any, ...] = attrs.field(default=(), converter=tuple_of)
    minimum: float | None = None

    def describe(self) -> str:
        """One line for ``--help`` pages and the plugin guide."""
        kind = "secret (KEY_env or KEY_file)" if self.secret else TYPE_NAMES.get(self.type, "a value")
        extra = f", one of {', '.join(map(str, self.choices))}" if self.choices else ""
        default = f", default {self.default!r}" if self.default is not None and not self.secret else ""
        return f"{self.name}: {kind}{extra}{default}. {self.help}".rstrip(". ") + "."


def _shown(value: Any) -> str:
    """A value as messages repeat it: a long one (a connection string put in the wrong key,
    say) is not repeated, as it may hold a secret."""
    text = repr(value)
    return text if len(text) <= 24 else f"a value of {len(text)} characters (not shown)"


def _fits(setting: Setting, value: Any) -> bool:
    if setting.type is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if setting.type is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, setting.type)


def check_table(where: str, table: Mapping[str, Any], declared: Sequence[Setting],
                ignore: Sequence[str] = ("driver",)) -> dict[str, Any]:
    """Check ``table`` against the ``declared`` settings; return it with defaults filled in.

    ``where`` names the file and the table (``/home/x/encompass.toml: [pools.san]``). Secret
    settings come back as their ``_env``/``_file`` keys, never as values.
    """
    known = {s.name: s for s in declared}
    sources = {f"{s.name}{suffix}": s for s in declared if s.secret for suffix in ("_env", "_file")}
    result: dict[str, Any] = {}
    for key, value in table.items():
        if key in ignore:
            continue
        if key in sources:
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{where}: '{key}' should name "
                                  + ("an environment variable" if key.endswith("_env") else "a file")
                                  + f", found {_shown(value)}")
            result[key] = value
            continue
        setting = known.get(key)
        if setting is None:
            names = ", ".join(sorted([*known, *sources])) or "none"
            raise ConfigError(f"{where}: unknown setting '{key}' (settings here: {names})")
        if setting.secret:
            raise ConfigError(f"{where}: do not write the secret '{key}' in the file; use "
                              f"{key}_env = \"VARIABLE\" or {key}_file = \"path (mode 0600)\"")
        if not _fits(setting, value):
            raise ConfigError(f"{where}: '{key}' should be {TYPE_NAMES.get(setting.type, 'a value')}, "
                              f"found {_shown(value)}")
        if setting.choices and value not in setting.choices:
            raise ConfigError(f"{where}: '{key}' should be one of "
                              f"{', '.join(map(str, setting.choices))}, found {_shown(value)}")
        if setting.minimum is not None and value < setting.minimum:
            raise ConfigError(f"{where}: '{key}' should be at least {setting.minimum:g}, "
                              f"found {_shown(value)}")
        result[key] = value
    for setting in declared:
        if setting.secret:
            if setting.required and not any(f"{setting.name}{s}" in result for s in ("_env", "_file")):
                raise ConfigError(f"{where}: needs its {setting.name}: {setting.name}_env = \"VARIABLE\" "
                                  f"or {setting.name}_file = \"path (mode 0600)\"")
            continue
        if setting.name not in result:
            if setting.required:
                what = setting.help or TYPE_NAMES.get(setting.type, "a value")
                raise ConfigError(f"{where}: needs the setting '{setting.name}' ({what})")
            if setting.default is not None:
                result[setting.name] = setting.default
    return result
