"""Upgrades of TinyDB repositories, in place: schema 1 (one file) and 2 (shards without logs).

Schema 2 is schema 3 without the shards' logs: its files are read as they are, and the upgrade
only rewrites ``metadata.json`` with the new number (the schema-2 one stays as its ``.bak``),
so that an older Encompass, which would not read the logs, refuses the repository.

Schema 1 to 3: one ``metadata.json`` becomes shards.

Schema 1 kept everything in one TinyDB file: the tables ``images``, ``events`` and ``machines``
(each ``{document id: document}``) and ``_meta`` (``{"1": {"schema": 1}}``). The upgrade writes
the whole new ``metadata.d/`` under a temporary name, renames it into place, then replaces
``metadata.json`` by the schema-2 one (the schema-1 file stays as ``metadata.json.bak``). That
last rename is the commit: a crash before it leaves a schema-1 repository (and an unreferenced
directory, rebuilt next time), a crash after it a complete schema-2 one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from ..lifecycle import TRANSITIONAL
from . import files
from .tiny_layout import _META, ORDER, SCHEMA, SHARDS, corrupt, dumps, empty_shard, references, shard_of

if TYPE_CHECKING:
    from .tinydb import Store


@attrs.define
class Loaded:
    """A schema-1 repository rearranged as schema 2, in memory."""

    meta: dict[str, Any]
    shards: dict[int, dict[str, Any]]
    machines: dict[str, Any]
    events: list[dict[str, Any]]


def check_table(path: Path, data: dict[str, Any], name: str) -> dict[str, Any]:
    """Table ``name`` of a schema-1 file, checked to be an object of documents."""
    table = data.get(name, {})
    if not isinstance(table, dict) or not all(isinstance(d, dict) for d in table.values()):
        raise corrupt(path, f"its table '{name}' is not an object of documents")
    return table


def _table(path: Path, data: dict[str, Any], name: str) -> list[dict[str, Any]]:
    table = check_table(path, data, name)

    def key(doc_id: str) -> tuple[int, str]:
        return (int(doc_id), "") if doc_id.isdigit() else (0, doc_id)

    return [table[doc_id] for doc_id in sorted(table, key=key)]


def load_schema1(path: Path, data: dict[str, Any], shards: int) -> Loaded:
    """The schema-1 file's content as schema 2 (nothing written)."""
    meta = {"schema": SCHEMA, "shards": shards, "deployed": {}}
    loaded = Loaded(meta=meta, shards={}, machines={}, events=[])
    images = _table(path, data, "images")
    for position, doc in enumerate(images, 1):  # creation order: before any stamp of schema 2
        name = doc.get("name")
        if not isinstance(name, str):
            raise corrupt(path, f"an image document has no name ({str(doc)[:60]})")
        shard = loaded.shards.setdefault(shard_of(name, shards), empty_shard())
        shard["images"][name] = doc
        shard["order"][name] = position
    for doc in images:
        for target in sorted(references(doc)):
            shard = loaded.shards.setdefault(shard_of(target, shards), empty_shard())
            shard["referrers"].setdefault(target, []).append(doc["name"])
        if doc.get("state") in TRANSITIONAL:
            loaded.shards[shard_of(doc["name"], shards)]["busy"][doc["name"]] = doc["state"]
        if doc.get("machine"):
            meta["deployed"][doc["name"]] = doc["machine"]
    for doc in _table(path, data, "machines"):
        if isinstance(doc.get("name"), str):
            loaded.machines[doc["name"]] = doc
    loaded.events = [doc for doc in _table(path, data, "events") if isinstance(doc.get("image"), str)]
    return loaded


def _write(path: Path, data: bytes) -> None:
    with open(path, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


def upgrade_in_place(store: Store, data: dict[str, Any]) -> None:
    """Rewrite a schema-1 repository as schema 2 (the store's exclusive lock is held)."""
    layout = store.layout
    loaded = load_schema1(store.path, data, SHARDS)
    staging = layout.dir.with_name(f".{layout.dir.name}.upgrade")
    for leftover in (staging, layout.dir):  # from an upgrade killed before its commit
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(leftover)
    staging.mkdir()
    for index, shard in loaded.shards.items():
        _write(staging / layout.shard(index).name, dumps(shard))
    _write(staging / layout.machines.name, dumps({"machines": loaded.machines}))
    lines = [json.dumps({**doc, ORDER: position}, separators=(",", ":")).encode() + b"\n"
             for position, doc in enumerate(loaded.events)]  # their order: see tiny_layout.ORDER
    _write(staging / layout.events.name, b"".join(lines))
    files.fsync_dir(staging)
    os.rename(staging, layout.dir)
    files.fsync_dir(layout.dir.parent)
    files.replace_one(store.path, dumps({"_meta": {"1": loaded.meta}}))


def upgrade_schema2(store: Store, meta: dict[str, Any]) -> dict[str, Any]:
    """Mark a schema-2 repository as schema 3 (the store's exclusive lock is held); its meta."""
    upgraded = {**meta, "schema": SCHEMA}
    files.replace_one(store.path, dumps({_META: {"1": upgraded}}))
    return upgraded
