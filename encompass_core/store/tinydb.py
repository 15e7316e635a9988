"""The metadata repository: images, their history, and machines, in one TinyDB file.

This is the only module that imports TinyDB. Every change happens inside
:meth:`Store.transaction`, which holds an inter-process file lock, reads the file once, and
writes it back atomically (temp file, fsync, rename, fsync of the directory) when the block
ends without an exception. The previous file is kept as ``<file>.bak``. A corrupt file or one
of an unknown schema is an error naming the file; it is never overwritten.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

from tinydb import Query, TinyDB
from tinydb.middlewares import CachingMiddleware
from tinydb.storages import Storage

from ..convert import from_document, to_document
from ..errors import Conflict, NotFound, StoreError
from ..model import Event, Image, Machine, Owner, now
from .owners import owner_alive

SCHEMA = 1
T = TypeVar("T")
_META = "_meta"


class _AtomicJSONStorage(Storage):
    """TinyDB storage that validates on read and replaces the file atomically on write."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def read(self) -> dict[str, Any] | None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(f"cannot read metadata file {self.path}: {exc.strerror}") from exc
        except UnicodeDecodeError as exc:
            raise self._corrupt(f"byte {exc.start} is not UTF-8") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise self._corrupt(f"line {exc.lineno}, column {exc.colno}: {exc.msg}") from exc
        except RecursionError:
            raise self._corrupt("it nests too deeply") from None
        if not isinstance(data, dict):
            raise self._corrupt("its top level is not an object")
        for table, documents in data.items():
            # TinyDB reads each table as {document id: document}: anything else is damage.
            if not isinstance(documents, dict) or not all(isinstance(d, dict) for d in documents.values()):
                raise self._corrupt(f"its table '{table}' is not an object of documents")
        schema = data.get(_META, {}).get("1", {}).get("schema")
        if schema != SCHEMA:
            raise StoreError(
                f"metadata file {self.path} has schema version {schema!r}, this Encompass "
                f"understands {SCHEMA}; upgrade Encompass (or restore a matching backup)"
            )
        return data

    def _corrupt(self, what: str) -> StoreError:
        return StoreError(
            f"metadata file {self.path} is corrupt ({what}); it was left untouched. Restore it "
            f"from {self.path}.bak or move it away to start afresh"
        )

    def write(self, data: dict[str, Any]) -> None:
        data.setdefault(_META, {"1": {"schema": SCHEMA}})
        directory = self.path.parent
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                # dumps without indent runs json's C encoder: many times faster than json.dump.
                out.write(json.dumps(data))
                out.flush()
                os.fsync(out.fileno())
            if self.path.exists():
                backup_tmp = f"{tmp}.bak"
                os.link(self.path, backup_tmp)
                os.replace(backup_tmp, f"{self.path}.bak")
                # rename(2) does nothing when both names are links to one file already (a writer
                # killed between its two renames leaves the .bak as the current file).
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(backup_tmp)
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def close(self) -> None:
        pass


class Transaction:
    """A consistent view of the store under its lock; changes are written when it ends."""

    def __init__(self, db: TinyDB, path: Path) -> None:
        self._db = db
        self._path = path
        self._images = db.table("images")
        self._events = db.table("events")
        self._machines = db.table("machines")

    def _load(self, cls: type[T], doc: dict[str, Any], where: str) -> T:
        """A stored document as ``cls``; one that does not fit the model is refused, naming it."""
        try:
            return from_document(cls, doc, where)
        except StoreError as exc:
            raise StoreError(
                f"metadata file {self._path}: {exc}; it was left untouched: fix that document, or "
                f"restore {self._path}.bak"
            ) from None

    # -- images ---------------------------------------------------------------------------
    def images(self) -> list[Image]:
        """Every image, in the order they were created."""
        return [self._load(Image, d, f"image {d.get('name')!r}") for d in self._images.all()]

    def find_image(self, name: str) -> Image | None:
        doc = self._images.get(Query().name == name)
        return self._load(Image, doc, f"image {name!r}") if doc else None

    def image(self, name: str) -> Image:
        """The image called ``name``; :class:`NotFound` with a hint otherwise."""
        found = self.find_image(name)
        if found is None:
            raise NotFound(f"no image named '{name}' (see: encompass image list)")
        return found

    def add_image(self, image: Image) -> None:
        if self._images.contains(Query().name == image.name):
            raise Conflict(f"an image named '{image.name}' exists already; pick another name")
        self._images.insert(to_document(image))

    def put_image(self, image: Image) -> None:
        """Replace the stored image of the same name (stamping ``updated``)."""
        doc = to_document(image)
        doc["updated"] = now()
        if not self._images.update(doc, Query().name == image.name):
            raise NotFound(f"no image named '{image.name}' to update")

    def remove_image(self, name: str) -> None:
        self._images.remove(Query().name == name)

    # -- events ---------------------------------------------------------------------------
    def add_event(self, event: Event) -> None:
        self._events.insert(to_document(event))

    def events(self, image: str | None = None) -> list[Event]:
        docs = self._events.search(Query().image == image) if image else self._events.all()
        return [self._load(Event, d, f"event of image {d.get('image')!r}") for d in docs]

    # -- machines -------------------------------------------------------------------------
    def machines(self) -> list[Machine]:
        return [self._load(Machine, d, f"machine {d.get('name')!r}") for d in self._machines.all()]

    def find_machine(self, name: str) -> Machine | None:
        doc = self._machines.get(Query().name == name)
        return self._load(Machine, doc, f"machine {name!r}") if doc else None

    def put_machine(self, machine: Machine) -> None:
        """Insert or replace the machine of the same name."""
        self._machines.upsert(to_document(machine), Query().name == machine.name)

    def remove_machine(self, name: str) -> None:
        self._machines.remove(Query().name == name)


class Store:
    """The metadata file ``<home>/metadata.json`` and its lock."""

    backend = "tinydb"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StoreError(f"cannot open lock file {self.lock_path}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _sweep(self) -> None:
        """Remove temp files of writers killed mid-write (only writers holding the lock make them)."""
        for stale in self.path.parent.glob(f".{self.path.name}.*.tmp*"):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """Lock, read, yield a :class:`Transaction`; write atomically if the block succeeds."""
        with self._locked():
            self._sweep()
            db = TinyDB(str(self.path), storage=CachingMiddleware(_AtomicJSONStorage))
            storage = db.storage
            storage.WRITE_CACHE_SIZE = 1 << 30  # write once, at the end
            try:
                yield Transaction(db, self.path)
            except BaseException:
                storage.cache = None  # drop the changes
                storage._cache_modified_count = 0
                raise
            try:
                if storage._cache_modified_count:
                    storage.flush()
            except OSError as exc:
                if exc.errno == errno.ENOSPC:
                    raise StoreError(f"no space left to write {self.path}; nothing was changed") from exc
                raise StoreError(f"cannot write {self.path}: {exc.strerror}") from exc

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[Transaction]:
        """A read-only view (no lock needed: the file is only ever replaced whole)."""
        db = TinyDB(str(self.path), storage=CachingMiddleware(_AtomicJSONStorage))
        yield Transaction(db, self.path)

    def owner_alive(self, owner: Owner) -> bool | None:
        """Whether the owning process still runs (None: it runs on another host)."""
        return owner_alive(owner)

    def close(self) -> None:
        """Nothing is held between transactions."""
