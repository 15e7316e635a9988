"""The embedded backend's files: where they live, the shard of a name, reading and writing JSON.

See :mod:`.tinydb` for the layout (schema 2) and what each file holds.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any

from ..errors import StoreError

SCHEMA = 2
#: Key of each stored event line giving its place in everyone's history (events of different
#: images live in different files): a nanosecond stamp taken under the lock when written.
ORDER = "_order"
SHARDS = 64
_META = "_meta"


def shard_of(name: str, shards: int) -> int:
    """The shard an image's document (and its history) lives in."""
    return zlib.crc32(name.encode()) % shards


def references(doc: dict[str, Any]) -> set[str]:
    """The images a document refers to: its parent, its master, its volumes' backing images
    (those its last rebase keeps for a rollback too)."""
    refs = {doc.get("parent"), doc.get("master")}
    previous = doc.get("previous")
    kept = (previous.get("volumes") or ()) if isinstance(previous, dict) else ()
    for volume in [*(doc.get("volumes") or ()), *kept]:
        backing = volume.get("backing") if isinstance(volume, dict) else None
        if backing:
            refs.add(backing[0])
    refs.discard(None)
    refs.discard(doc.get("name"))
    return refs


class Layout:
    """Where the files of a repository live."""

    def __init__(self, path: Path) -> None:
        self.main = path
        self.lock = path.with_name(path.name + ".lock")
        self.dir = path.with_suffix(".d")
        self.journal = self.dir / "journal.json"
        self.machines = self.dir / "machines.json"
        self.events = self.dir / "events.jsonl"

    def shard(self, index: int) -> Path:
        return self.dir / f"images-{index:02d}.json"



def read_json(path: Path, required: bool = False) -> dict[str, Any] | None:
    """A JSON object from ``path``; damage is a :class:`StoreError` naming the file."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        if required:
            raise StoreError(f"metadata file {path} is missing; restore it from {path}.bak") from None
        return None
    except OSError as exc:
        raise StoreError(f"cannot read metadata file {path}: {exc.strerror}") from exc
    try:
        data = json.loads(raw)
    except UnicodeDecodeError as exc:
        raise corrupt(path, f"byte {exc.start} is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise corrupt(path, f"line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise corrupt(path, "it nests too deeply") from None
    if not isinstance(data, dict):
        raise corrupt(path, "its top level is not an object")
    return data


def corrupt(path: Path, what: str) -> StoreError:
    return StoreError(
        f"metadata file {path} is corrupt ({what}); it was left untouched. Restore it "
        f"from {path}.bak or move it away to start afresh"
    )


def dumps(data: Any) -> bytes:
    # dumps without indent runs json's C encoder: many times faster than json.dump.
    return json.dumps(data, separators=(",", ":")).encode()


def new_meta() -> dict[str, Any]:
    """The main file's record of a new repository."""
    return {"schema": SCHEMA, "shards": SHARDS, "deployed": {}}
