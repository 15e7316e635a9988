"""The embedded backend: the repository as TinyDB-style JSON documents in ``ENCOMPASS_HOME``.

Schema 3 keeps a single-image operation cheap however many images there are, and makes adding
images cost what is added, not what is there:

- ``metadata.json``: the schema number, the shard count, and a small index of the images on a
  machine (``deployed``), which only deploy and undeploy change.
- ``metadata.d/images-NN.json``: the image documents, spread over shards by a hash of the name;
  each shard also keeps their creation stamps (``order``), those of its images held by an
  operation (``busy``), and, for each name hashed to it, the images that refer to it (as
  parent, master or backing volume), so children and dependents are found without a scan.
- ``metadata.d/images-NN.jsonl``: the shard's log. A transaction appends one line to the log of
  each shard it changed, the patch of its tables (documents set or removed, links added or
  dropped), instead of rewriting the shard; a log grown larger than its base is folded into it
  (the base rewritten, the log emptied), so the bytes written stay proportional to the changes.
  An operation on one image appends to one log (two when it makes a clone: the parent's too).
- ``metadata.d/machines.json``: the machines.
- ``metadata.d/events.jsonl``: everyone's history, appended (``O_APPEND``, fsync'd once per
  transaction), never rewritten; each line is stamped with its place (``ORDER``).

A transaction holds an exclusive inter-process lock (``flock`` on ``metadata.json.lock``),
reads only the shards it is asked about, converts only the documents asked for, and writes
only what changed, all or nothing (:mod:`.files`: an undo record for appends to several logs,
the redo journal for files replaced); each replaced file keeps its previous version as
``.bak``. Snapshots take the lock shared. Repositories of schema 1 (one ``metadata.json``
holding images, events and machines) and 2 (shards without logs) are upgraded in place on first
use (:mod:`.upgrade`), or read as they are when their directory is read-only.

This module is the store (the lock, the schema check, recovery); :mod:`.tiny_layout` holds the
files' names and their reading and writing, :mod:`.tiny_transaction` a transaction.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import StoreError
from ..model import Owner
from . import files, upgrade
from .owners import owner_alive
from .tiny_layout import (  # noqa: F401 (the layout's names, as the rest of the store knows them)
    _META,
    ORDER,
    SCHEMA,
    SHARDS,
    Layout,
    corrupt,
    dumps,
    new_meta,
    read_json,
    references,
    shard_of,
)
from .tiny_transaction import Transaction

# The locks this thread holds, by lock file: a snapshot taken inside a transaction of the same
# thread must not wait for its own lock.
_held = threading.local()


class Store:
    """The repository whose main file is ``<home>/metadata.json``, and its lock."""

    backend = "tinydb"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.layout = Layout(self.path)
        self.lock_path = self.layout.lock

    @contextlib.contextmanager
    def _locked(self, mode: int) -> Iterator[None]:
        held = getattr(_held, "paths", None)
        if held is None:
            held = _held.paths = set()
        key = str(self.lock_path)
        if key in held:  # this thread holds it already (a snapshot inside its transaction)
            yield
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StoreError(f"cannot open lock file {self.lock_path}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, mode)
            held.add(key)
            try:
                yield
            finally:
                held.discard(key)
        finally:
            os.close(fd)

    def _meta(self) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """(schema-2 meta, or None when the repository is new) and the raw schema-1 data if any."""
        data = read_json(self.path)
        if data is None:
            return None, None
        meta = data.get(_META)
        record = meta.get("1") if isinstance(meta, dict) else None
        schema = record.get("schema") if isinstance(record, dict) else None
        if schema == 1:
            return None, data
        if schema is None:  # no schema record: damage, not a version (say which table is off)
            for table in ("images", "events", "machines"):
                upgrade.check_table(self.path, data, table)
            raise corrupt(self.path, "it has no schema record ('_meta')")
        if schema not in (2, SCHEMA):  # schema 2 is read as it is (see _upgrade2)
            raise StoreError(
                f"metadata file {self.path} has schema version {schema!r}, this Encompass "
                f"understands {SCHEMA} (and upgrades 1 and 2); upgrade Encompass (or restore a "
                "matching backup)"
            )
        if not isinstance(record.get("deployed"), dict):
            raise corrupt(self.path, "its 'deployed' index is not an object")
        if not isinstance(record.get("shards"), int) or record["shards"] < 1:
            raise corrupt(self.path, "its shard count is not a positive whole number")
        return record, None

    def _recover(self) -> None:
        """Finish, undo or sweep what a killed writer left (exclusive lock held): a redo journal
        means it had committed (its appends stay), an undo record alone that it had not."""
        if files.replay(self.layout.journal):
            files.clear_undo(self.layout.undo)
        else:
            files.roll_back(self.layout.undo)
        files.sweep(self.path.parent, self.layout.dir)

    def _needs_writer(self) -> bool:
        """Whether a killed writer left something to finish or undo."""
        return self.layout.journal.exists() or files.pending_undo(self.layout.undo)

    def _upgrade2(self, meta: dict[str, Any] | None) -> dict[str, Any] | None:
        """A schema-2 repository marked schema 3 (exclusive lock held)."""
        if meta is not None and meta["schema"] == 2:
            with self._write_errors():
                return upgrade.upgrade_schema2(self, meta)
        return meta

    def _write_errors(self) -> contextlib.AbstractContextManager[None]:
        return _write_errors(self.path)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """Lock, read what is asked, yield a :class:`Transaction`; write what changed if the
        block succeeds, nothing if it raises."""
        with self._locked(fcntl.LOCK_EX):
            with self._write_errors():
                self._recover()
            meta, old = self._meta()
            if old is not None:
                with self._write_errors():
                    upgrade.upgrade_in_place(self, old)
                meta, old = self._meta()
            meta = self._upgrade2(meta)
            tx = Transaction(self.layout, meta or new_meta())
            committed = False
            try:
                yield tx
                with self._write_errors():
                    tx._commit(create=meta is None)
                committed = True
            finally:
                tx._release(committed)

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[Transaction]:
        """A read-only, consistent view (the lock taken shared: writers wait, readers do not)."""
        with self._locked(fcntl.LOCK_SH):
            needs_writer = self._needs_writer()
            if not needs_writer:
                meta, old = self._meta()
                needs_writer = old is not None or (meta is not None and meta["schema"] == 2)
            if not needs_writer:
                tx = Transaction(self.layout, meta or new_meta(), writable=False)
                try:
                    yield tx
                finally:
                    tx._release(False)
                return
        # A killed writer's journal to finish, or a schema-1 repository to upgrade: as a writer.
        with self._locked(fcntl.LOCK_EX):
            with self._write_errors():
                self._recover()
            meta, old = self._meta()
            if old is not None:
                try:
                    upgrade.upgrade_in_place(self, old)
                except OSError as exc:
                    if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                        raise StoreError(f"cannot upgrade {self.path}: {exc.strerror}") from exc
                    # Cannot write here: read the old layout as it is.
                    loaded = upgrade.load_schema1(self.path, old, SHARDS)
                    yield Transaction(self.layout, loaded.meta, memory=loaded, writable=False)
                    return
                meta, old = self._meta()
            try:
                meta = self._upgrade2(meta)
            except StoreError:
                if os.access(self.path.parent, os.W_OK):
                    raise
                # Cannot write here: schema 2 is schema 3 without logs, read as it is.
            yield Transaction(self.layout, meta or new_meta(), writable=False)

    def owner_alive(self, owner: Owner) -> bool | None:
        """Whether the owning process still runs (None: it runs on another host)."""
        return owner_alive(owner)

    def close(self) -> None:
        """Nothing is held between transactions."""


@contextlib.contextmanager
def _write_errors(path: Path) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise StoreError(f"no space left to write {path}; nothing was changed") from exc
        raise StoreError(f"cannot write {path} (or its directory {path.with_suffix('.d')}): "
                         f"{exc.strerror}") from exc
