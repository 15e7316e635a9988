"""The embedded backend's files: where they live, the shard of a name, reading and writing JSON,
and the patches a shard's log holds.

See :mod:`.tinydb` for the layout (schema 3) and what each file holds.
"""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path
from typing import Any

from ..errors import StoreError

SCHEMA = 3
#: Key of each stored event line giving its place in everyone's history (events of different
#: images live in different files): a nanosecond stamp taken under the lock when written.
ORDER = "_order"
#: Shards of a new repository (those upgraded from schema 2 keep their 64): at 10,000 images
#: about 40 documents each, so that reading the one an operation asks about stays cheap.
SHARDS = 64
_META = "_meta"
#: A shard's log is folded into its base file once it is larger than the base (and than this):
#: the bytes rewritten stay proportional to those appended, so building a repository is linear.
COMPACT_BYTES = 32768
#: The tables of a shard, and the key each one has in a patch (a line of the shard's log).
TABLES = {"images": "i", "order": "o", "busy": "b"}
REFERRERS = "r"


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

        self.undo = self.dir / "undo.json"

    def shard(self, index: int) -> Path:
        """A shard's base file: its tables as they were when its log was last folded in."""
        return self.dir / f"images-{index:02d}.json"

    def log(self, index: int) -> Path:
        """A shard's log: one patch a line, appended by each transaction that changed it."""
        return self.dir / f"images-{index:02d}.jsonl"


def empty_shard() -> dict[str, Any]:
    return {"images": {}, "order": {}, "referrers": {}, "busy": {}}


def new_patch() -> dict[str, Any]:
    """What a transaction changed in one shard: per table the keys set (None: removed), and the
    referrer links added (1) or dropped (0), in order."""
    return {"i": {}, "o": {}, "b": {}, REFERRERS: []}


def apply_patch(shard: dict[str, Any], patch: dict[str, Any]) -> None:
    """Change ``shard`` (as :func:`loaded_shard` holds it) as ``patch`` says. Applying again the
    patches a base already holds changes nothing (each sets a value or a link's presence), so
    folding a log into its base and then emptying the log needs no atomicity between the two."""
    for table, key in TABLES.items():
        rows = shard[table]
        for name, value in patch.get(key, {}).items():
            if value is None:
                rows.pop(name, None)
            else:
                rows[name] = value
    referrers = shard["referrers"]
    for target, name, present in patch.get(REFERRERS, ()):
        names = referrers.get(target)
        if present:
            if names is None:
                names = referrers[target] = {}
            names[name] = None
        elif names is not None:
            names.pop(name, None)
            if not names:
                del referrers[target]


def loaded_shard(base: dict[str, Any]) -> dict[str, Any]:
    """A shard's base file as a transaction holds it: each referrer list as an ordered set (a
    master with 10,000 clones gains or loses one in constant time)."""
    base["referrers"] = {target: dict.fromkeys(names) for target, names in base["referrers"].items()}
    return base


def base_document(shard: dict[str, Any]) -> bytes:
    """What a shard's base file holds (referrer sets written as lists)."""
    referrers = {target: list(names) for target, names in shard["referrers"].items()}
    return dumps({**shard, "referrers": referrers})


def read_log(path: Path, start: int = 0) -> tuple[list[dict[str, Any]], int] | None:
    """The patches of a shard's log from byte ``start`` (the start of a line), and the length
    of its committed part; None when the log is shorter than ``start`` now. A last line
    without its newline was cut short by a killed writer (never committed): it is left out."""
    try:
        with open(path, "rb") as log:
            if start:
                log.seek(start)
            raw = log.read()
    except FileNotFoundError:
        return ([], 0) if not start else None
    except OSError as exc:
        raise StoreError(f"cannot read metadata file {path}: {exc.strerror}") from exc
    if start and not raw and os.path.getsize(path) < start:
        return None
    good = raw.rfind(b"\n") + 1
    patches = []
    for number, line in enumerate(raw[:good].split(b"\n")[:-1], 1):
        try:
            patch = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise corrupt(path, f"line {number} is not a JSON patch") from None
        if not isinstance(patch, dict):
            raise corrupt(path, f"line {number} is not a JSON object")
        patches.append(patch)
    return patches, start + good


def read_json(path: Path, required: bool = False) -> dict[str, Any] | None:
    """A JSON object from ``path``; damage is a :class:`StoreError` naming the file."""
    return read_json_sized(path, required)[0]


def read_json_sized(path: Path, required: bool = False) -> tuple[dict[str, Any] | None, int | None]:
    """:func:`read_json` and the file's length (None when it does not exist)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        if required:
            raise StoreError(f"metadata file {path} is missing; restore it from {path}.bak") from None
        return None, None
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
    return data, len(raw)


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
