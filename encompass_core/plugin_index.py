"""The installed plugins as the last full look found them, so that a command can start without
importlib.metadata.

Finding the entry points of ``encompass.plugins`` takes importlib.metadata (which imports the
email parser, zipfile, csv...) and a scan of every installed distribution: about 30 ms before
any command does anything, as long as the rest of a small clone. What a full look finds is
kept in one small JSON file under ``$XDG_CACHE_HOME/encompass/`` (default ``~/.cache``):
- each entry point's name and target;
- its distribution's name and version;
- the folder the distribution was installed from (PEP 610);
- the core's own version.

The file holds, and is used only while nothing has changed since:
- the interpreter;
- every folder of the import path, with its modification time;
- every ``entry_points.txt`` in those folders, with its modification time, to the nanosecond
  (stevedore keys its cache on the same files, but packs their times as 32-bit floats: a
  128-second step, which missed an entry point changed within two minutes).

Installing, removing or upgrading a distribution changes one of those times; another virtual
environment or another PYTHONPATH is another key. Then the plugin host looks again and writes
the file anew. A file that cannot be read or written costs only the time it would have saved.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import zlib
from pathlib import Path
from typing import Any

import attrs

#: Bumped when the file's layout changes: an older file is then a miss, not an error.
LAYOUT = 1


@attrs.frozen
class IndexedPlugin:
    """One entry point of the group, as the full look found it."""

    name: str
    #: ``module`` or ``module:attribute`` (the entry point's value).
    target: str
    distribution: str
    version: str
    #: The local folder the distribution was installed from (PEP 610), if any.
    installed_from: str | None = None

    def load(self) -> Any:
        """Import the target, as ``importlib.metadata.EntryPoint.load`` does."""
        module_name, _, attribute = self.target.partition(":")
        found: Any = importlib.import_module(module_name.strip())
        for part in attribute.split("[")[0].strip().split("."):
            if part:
                found = getattr(found, part)
        return found


@attrs.frozen
class PluginIndex:
    """What one full look found: the core's version and the group's entry points, in order."""

    core_version: str
    plugins: tuple[IndexedPlugin, ...]


def read(group: str, key: list[Any]) -> PluginIndex | None:
    """The index of ``group`` written for this very installation (``key``, from
    :func:`installation_key`), or None (a miss)."""
    try:
        with open(_file(group), encoding="utf-8") as handle:
            data = json.load(handle)
        if data.get("layout") != LAYOUT or data.get("key") != key:
            return None
        plugins = tuple(IndexedPlugin(**entry) for entry in data["plugins"])
        return PluginIndex(str(data["core_version"]), plugins)
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None


def write(group: str, key: list[Any], index: PluginIndex) -> None:
    """Keep ``index`` for the next commands of this installation (``key``, the one the index was
    read with: atomically; best effort)."""
    path = _file(group)
    data = {"layout": LAYOUT, "key": key, "core_version": index.core_version,
            "plugins": [attrs.asdict(plugin) for plugin in index.plugins]}
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(partial, "w", encoding="utf-8") as handle:
            json.dump(data, handle)
        os.replace(partial, path)
    except OSError:
        try:
            partial.unlink(missing_ok=True)
        except OSError:
            pass


def _file(group: str) -> Path:
    """This installation's file: named after the interpreter and the import path (a checksum
    only to tell installations apart; the whole key is inside, and compared)."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    place = "\0".join([sys.executable, sys.prefix, group, *sys.path])
    return Path(cache) / "encompass" / f"plugins-{zlib.crc32(place.encode()):08x}.json"


def installation_key() -> list[Any]:
    """What the index depends on: the interpreter, the import path's folders and the
    ``entry_points.txt`` files in them, each with its modification time (one listing of each
    folder: taken once per load, for the read and the write)."""
    key: list[Any] = [sys.executable, sys.prefix]
    for folder in sys.path:
        key.append([folder, _mtime(folder)])
        try:
            names = sorted(os.listdir(folder or "."))
        except OSError:
            continue
        for name in names:
            if name.endswith((".dist-info", ".egg-info")):
                points = os.path.join(folder, name, "entry_points.txt")
                mtime = _mtime(points)
                if mtime is not None:
                    key.append([points, mtime])
    return key


def _mtime(path: str) -> int | None:
    try:
        return os.stat(path or ".").st_mtime_ns
    except OSError:
        return None
