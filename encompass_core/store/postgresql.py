"""The PostgreSQL backend of the store: one repository shared by several utility servers.

Images are JSONB documents in ``images`` with generated, indexed columns for what operations
ask about (name, kind, state, master, parent, machine); ``backing`` says which images read
through another's volumes; ``events`` is appended to with a serial id; ``machines`` as
documents too. The schema comes with numbered migrations (:mod:`.pg_schema`).

A transaction is a real database transaction (READ COMMITTED): reading an image in it locks
that row (``SELECT … FOR UPDATE``) until the transaction ends, so two processes taking one
image's transitional state queue on that row only — there is no repository-wide lock. A
snapshot is a read-only REPEATABLE READ transaction. Owners are leased (:mod:`.pg_lease`).

The DSN comes from ``[store] dsn_env = "VAR"`` or ``dsn_file = "path"`` (mode 0600); it is
never stored, logged or printed, and messages that would quote it hide its password.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from psycopg import conninfo, errors
from psycopg.types.json import Jsonb

from .. import config as config_mod
from ..convert import from_document, summaries_from_documents, to_document
from ..errors import ConfigError, Conflict, NotFound, StoreError
from ..model import Event, Image, ImageSummary, Machine, Owner, now
from . import pg_lease, pg_schema
from .bulk import collector_paused
from .owners import process_start_time

#: What :func:`~encompass_core.convert.summaries_from_documents` reads of an image document.
SUMMARY_FIELDS = ("name", "kind", "state", "version", "master", "parent", "master_version", "machine",
                  "error", "volumes")
_SUMMARY_COLUMNS = ", ".join(f"(doc->'{field}')::text" for field in SUMMARY_FIELDS)

T = TypeVar("T")
BACKEND = "postgresql"


def host_identity() -> str:
    """The name this host goes by in owners: ``$ENCOMPASS_HOST``, else the host name."""
    from . import owners

    if hasattr(owners, "host_identity"):
        return owners.host_identity()
    return os.environ.get("ENCOMPASS_HOST") or socket.gethostname()


# -- the DSN, kept secret ------------------------------------------------------------------------
_PASSWORD_RE = re.compile(r"password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
_URL_PASSWORD_RE = re.compile(r"://[^:/@\s]*:([^@\s]+)@")


def describe(dsn: str) -> str:
    """How messages name the database a DSN reaches (``host:port/dbname``), never its password."""
    try:
        params = conninfo.conninfo_to_dict(dsn)
    except psycopg.Error:
        return "(the configured database; its DSN does not parse)"
    host = params.get("host") or params.get("hostaddr") or "localhost"
    port = params.get("port") or "5432"
    return f"{host}:{port}/{params.get('dbname') or params.get('user') or ''}"


def redact(text: str, dsn: str) -> str:
    """``text`` with the DSN's password (and the DSN itself) replaced by ``***``."""
    secrets = [m.group(1) for m in _PASSWORD_RE.finditer(dsn)]
    secrets += [m.group(1) for m in _URL_PASSWORD_RE.finditer(dsn)]
    with contextlib.suppress(psycopg.Error):
        secrets.append(conninfo.conninfo_to_dict(dsn).get("password") or "")
    if dsn:
        text = text.replace(dsn, describe(dsn))
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, "***")
        text = text.replace(secret.strip("'"), "***") if len(secret.strip("'")) > 0 else text
    return text


def read_dsn(settings: dict[str, Any], config: config_mod.Config | None = None) -> str:
    """The DSN named by ``[store] dsn_env`` / ``dsn_file``; a DSN written in the file is refused."""
    if "dsn" in settings:
        raise ConfigError('[store]: do not write the DSN in the file (it may hold a password); use '
                          'dsn_env = "VARIABLE" or dsn_file = "path (mode 0600)"')
    section = config_mod.Section(name="store", driver=BACKEND, settings=settings)
    dsn = config_mod.secret(section, "dsn", config)
    if not dsn:
        raise ConfigError('[store] backend = "postgresql" needs dsn_env = "VARIABLE" or '
                          'dsn_file = "path (mode 0600)" naming the database')
    return dsn


def open_postgresql_store(config: config_mod.Config) -> PostgresStore:
    """The store ``config``'s ``[store]`` table describes (``backend = "postgresql"``)."""
    return open_store(config.home, config.store, config)


def open_store(home: Path, settings: dict[str, Any], config: config_mod.Config | None = None
               ) -> PostgresStore:
    """The store a ``[store]`` table (``backend = "postgresql"``) describes; ``dsn_file`` is
    relative to ``home``."""
    lease = _seconds(settings, "lease_seconds", pg_lease.LEASE_SECONDS)
    renew = _seconds(settings, "lease_renew_seconds", pg_lease.RENEW_SECONDS)
    if renew >= lease:
        raise ConfigError(f"[store] lease_renew_seconds ({renew:g}) must be shorter than "
                          f"lease_seconds ({lease:g}), or leases lapse while their process runs")
    if config is None:
        config = config_mod.Config(path=Path(home) / config_mod.CONFIG_NAME, defaults={}, pools={},
                                   platforms={}, store=dict(settings))
    return PostgresStore(read_dsn(settings, config), lease=lease, renew=renew)


def _seconds(settings: dict[str, Any], key: str, default: float) -> float:
    value = settings.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"[store] {key} should be a positive number of seconds, found {value!r}")
    return float(value)


# -- transactions ---------------------------------------------------------------------------------
_IMAGE_FILTERS = ("kind", "state", "master", "parent", "machine")


def _where(**given: str | None) -> tuple[str, list[str]]:
    """The WHERE clause (and its parameters) of the image filters given (not None)."""
    where = [f"{column} = %s" for column in _IMAGE_FILTERS if given[column] is not None]
    params = [given[column] for column in _IMAGE_FILTERS if given[column] is not None]
    return (f" WHERE {' AND '.join(where)}" if where else ""), params


class PostgresTransaction:
    """One database transaction; see :class:`encompass_core.store.protocol.Transaction`.

    In a writing transaction every image read is locked until the transaction ends."""

    def __init__(self, conn: psycopg.Connection, store: PostgresStore, locking: bool) -> None:
        self._conn = conn
        self._store = store
        self._lock = " FOR UPDATE" if locking else ""
        self._share = " FOR SHARE" if locking else ""
        self._events: list[Event] = []  # added, written in one statement before a read or the commit
        self._leased: set[Owner] = set()  # owners whose lease this transaction took already

    def _load(self, cls: type[T], doc: Any, where: str) -> T:
        try:
            return from_document(cls, doc, where)
        except StoreError as exc:
            raise StoreError(f"PostgreSQL repository {self._store.where}: {exc}; fix that document "
                             "(it was left untouched)") from None

    def _images(self, sql: str, params: Sequence[Any] = ()) -> list[Image]:
        """The images ``sql`` selects (one column: ``doc::text``)."""
        with collector_paused():
            texts = [text for (text,) in self._conn.execute(sql, params)]
            # One parse for them all: a listing of 10,000 pays json.loads' set-up once, not per row.
            docs = json.loads(f"[{','.join(texts)}]")
            return [self._load(Image, doc, f"image {doc.get('name')!r}") for doc in docs]

    # -- images -----------------------------------------------------------------------------
    def find_image(self, name: str, *, shared: bool = False) -> Image | None:
        lock = self._share if shared else self._lock
        found = self._images(f"SELECT doc::text FROM images WHERE name = %s{lock}", (name,))
        return found[0] if found else None

    def find_images(self, names: Sequence[str], *, shared: bool = False) -> list[Image]:
        lock = self._share if shared else self._lock
        # Locked in one order (their ids) whoever asks: two askers of overlapping sets never
        # hold one row each while waiting for the other's.
        found = {i.name: i for i in self._images(
            f"SELECT doc::text FROM images WHERE name = ANY(%s) ORDER BY id{lock}", (list(names),))}
        return [found[name] for name in names if name in found]

    def image(self, name: str, *, shared: bool = False) -> Image:
        found = self.find_image(name, shared=shared)
        if found is None:
            raise NotFound(f"no image named '{name}' (see: encompass image list)")
        return found

    def images(self, *, kind: str | None = None, state: str | None = None, master: str | None = None,
               parent: str | None = None, machine: str | None = None) -> list[Image]:
        clause, params = _where(kind=kind, state=state, master=master, parent=parent, machine=machine)
        return self._images(f"SELECT doc::text FROM images{clause} ORDER BY id{self._lock}", params)

    def summaries(self, *, kind: str | None = None, state: str | None = None, master: str | None = None,
                  parent: str | None = None, machine: str | None = None) -> list[ImageSummary]:
        clause, params = _where(kind=kind, state=state, master=master, parent=parent, machine=machine)
        with collector_paused():
            # Only the summarized fields, each as its JSON text (NULL where a document lacks
            # it): 10,000 rows came 50-70 ms sooner than whole documents (measured), and a field
            # list is no costlier to the server than doc::text (jsonb_build_object was).
            rows = self._conn.execute(f"SELECT id, {_SUMMARY_COLUMNS} FROM images{clause} ORDER BY id"
                                      f"{self._share}", params).fetchall()
            values = json.loads("[" + ",".join(
                "[" + ",".join("null" if v is None else v for v in row[1:]) + "]" for row in rows) + "]")
            docs = [dict(zip(SUMMARY_FIELDS, value, strict=True)) for value in values]
            # One the quick reading does not vouch for is read and converted whole: accepted,
            # or refused naming the field that does not fit.
            return [summary or self._whole_summary(row[0])
                    for summary, row in zip(summaries_from_documents(docs), rows, strict=True)]

    def _whole_summary(self, row_id: int) -> ImageSummary:
        (text,) = self._conn.execute("SELECT doc::text FROM images WHERE id = %s", (row_id,)).fetchone()
        doc = json.loads(text)
        return ImageSummary.of(self._load(Image, doc, f"image {doc.get('name')!r}"))

    def taken(self, names: Sequence[str]) -> list[str]:
        found = {n for (n,) in self._conn.execute("SELECT name FROM images WHERE name = ANY(%s)",
                                                  (list(names),))}
        return [name for name in names if name in found]

    def image_names(self) -> list[str]:
        return [name for (name,) in self._conn.execute("SELECT name FROM images ORDER BY id")]

    def children(self, name: str) -> list[Image]:
        return self._images("SELECT doc::text FROM images WHERE parent = %s ORDER BY id", (name,))

    def dependents(self, name: str) -> list[Image]:
        return self._images(
            "SELECT doc::text FROM images WHERE name <> %s AND (master = %s OR name IN "
            "(SELECT image FROM backing WHERE backing = %s)) ORDER BY id", (name, name, name))

    def add_image(self, image: Image) -> None:
        row = self._conn.execute(
            "INSERT INTO images (doc) VALUES (%s) ON CONFLICT (name) DO NOTHING RETURNING id",
            (Jsonb(to_document(image)),)).fetchone()
        if row is None:
            raise Conflict(f"an image named '{image.name}' exists already; pick another name")
        self._after_write(image, replaced=False)

    def add_images(self, images: Sequence[Image]) -> None:
        if not images:
            return
        names = [image.name for image in images]
        taken = self._conn.execute("SELECT name FROM images WHERE name = ANY(%s)", (names,)).fetchall()
        duplicate = {n for n in names if names.count(n) > 1}
        if taken or duplicate:
            clash = sorted({n for (n,) in taken} | duplicate)
            if len(clash) == 1:
                raise Conflict(f"an image named '{clash[0]}' exists already; pick another name")
            raise Conflict(f"images named {', '.join(repr(n) for n in clash)} exist already; "
                           "pick other names")
        with self._conn.cursor() as cursor:
            cursor.executemany("INSERT INTO images (doc) VALUES (%s)",
                               [(Jsonb(to_document(image)),) for image in images])
        for image in images:
            self._after_write(image, replaced=False)

    def put_image(self, image: Image) -> None:
        self.put_images([image])

    def put_images(self, images: Sequence[Image]) -> None:
        latest = {image.name: image for image in images}  # an image given twice: the last
        if not latest:
            return
        stamp = now()
        docs, pairs = [], []
        for image in latest.values():
            doc = to_document(image)
            doc["updated"] = stamp
            docs.append(Jsonb(doc))
            pairs += [(image.name, backing) for backing in self._backs(image)]
        # One round trip for them all: the documents, and their backing rows brought in step
        # (those they no longer read through dropped, new ones added).
        # Nothing is changed unless every one is there (present), so a caller that goes on
        # after the NotFound has not replaced some of them.
        updated = {name for (name,) in self._conn.execute(
            "WITH new AS (SELECT * FROM unnest(%s::jsonb[], %s::text[]) AS n(doc, name)), "
            "present AS (SELECT count(*) AS n FROM images WHERE name IN (SELECT name FROM new)), "
            "updated AS (UPDATE images SET doc = new.doc FROM new, present "
            "WHERE images.name = new.name AND present.n = %s RETURNING images.name), "
            "pairs AS (SELECT * FROM unnest(%s::text[], %s::text[]) AS p(image, backing)), "
            "dropped AS (DELETE FROM backing WHERE image IN (SELECT name FROM updated) "
            "AND (image, backing) NOT IN (SELECT image, backing FROM pairs)), "
            "added AS (INSERT INTO backing (image, backing) SELECT image, backing FROM pairs "
            "WHERE image IN (SELECT name FROM updated) ON CONFLICT DO NOTHING) "
            "SELECT name FROM updated",
            (docs, list(latest), len(latest), [i for i, _b in pairs], [b for _i, b in pairs]))}
        if len(updated) < len(latest):
            there = set(self.taken(list(latest)))
            missing = [name for name in latest if name not in there]
            raise NotFound(f"no image named '{missing[0]}' to update")
        for image in latest.values():
            self._after_write(image, replaced=True)

    @staticmethod
    def _backs(image: Image) -> list[str]:
        """The images ``image`` reads through (its volumes' backing)."""
        return sorted({v.backing[0] for v in image.reading_volumes
                       if v.backing and v.backing[0] != image.name})

    def _after_write(self, image: Image, replaced: bool) -> None:
        """Keep ``backing`` in step with a new document (put_image does it itself), and lease
        the owner if it is us."""
        backs = [] if replaced else self._backs(image)
        if backs:
            with self._conn.cursor() as cursor:
                cursor.executemany("INSERT INTO backing (image, backing) VALUES (%s, %s)",
                                   [(image.name, b) for b in backs])
        if image.owner is not None and image.owner not in self._leased \
                and self._store.is_this_process(image.owner):
            self._store.leases.take(self._conn, image.owner)
            self._leased.add(image.owner)

    def remove_image(self, name: str) -> None:
        self._conn.execute("WITH removed AS (DELETE FROM images WHERE name = %s) "
                           "DELETE FROM backing WHERE image = %s", (name, name))

    # -- history ----------------------------------------------------------------------------
    def add_event(self, event: Event) -> None:
        # Kept until the history is read or the transaction commits, then written in one go:
        # an operation on 25 clones records 25 events without 25 round trips.
        self._events.append(event)

    def add_events(self, events: Sequence[Event]) -> None:
        """Append many events at once, in order."""
        self._events.extend(events)

    def flush(self) -> None:
        """Write the events added since the last flush (in order)."""
        if self._events:
            events, self._events = self._events, []
            with self._conn.cursor() as cursor:
                cursor.executemany("INSERT INTO events (image, doc) VALUES (%s, %s)",
                                   [(e.image, Jsonb(to_document(e))) for e in events])

    def events(self, image: str | None = None, *, offset: int = 0, limit: int | None = None) -> list[Event]:
        self.flush()
        clause, params = ("WHERE image = %s ", [image]) if image is not None else ("", [])
        rows = self._conn.execute(f"SELECT doc FROM events {clause}ORDER BY id OFFSET %s LIMIT %s",
                                  [*params, offset, limit]).fetchall()
        return [self._load(Event, doc, f"event of image {doc.get('image')!r}") for (doc,) in rows]

    def count_events(self, image: str | None = None) -> int:
        self.flush()
        if image is None:
            return self._conn.execute("SELECT count(*) FROM events").fetchone()[0]
        return self._conn.execute("SELECT count(*) FROM events WHERE image = %s", (image,)).fetchone()[0]

    # -- machines ---------------------------------------------------------------------------
    def machines(self, *, platform: str | None = None, image: str | None = None) -> list[Machine]:
        where, params = [], []
        for column, value in (("platform", platform), ("image", image)):
            if value is not None:
                where.append(f"{column} = %s")
                params.append(value)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        rows = self._conn.execute(f"SELECT doc FROM machines{clause} ORDER BY id", params).fetchall()
        return [self._load(Machine, doc, f"machine {doc.get('name')!r}") for (doc,) in rows]

    def find_machine(self, name: str) -> Machine | None:
        row = self._conn.execute(f"SELECT doc FROM machines WHERE name = %s{self._lock}", (name,)).fetchone()
        return self._load(Machine, row[0], f"machine {name!r}") if row else None

    def put_machine(self, machine: Machine) -> None:
        self._conn.execute("INSERT INTO machines (doc) VALUES (%s) "
                           "ON CONFLICT (name) DO UPDATE SET doc = EXCLUDED.doc",
                           (Jsonb(to_document(machine)),))

    def remove_machine(self, name: str) -> None:
        self._conn.execute("DELETE FROM machines WHERE name = %s", (name,))

    def truncate(self) -> None:
        """Empty the repository (``store migrate --replace``); leases stay with their processes."""
        self._conn.execute("TRUNCATE images, backing, events, machines RESTART IDENTITY")


# -- the store ----------------------------------------------------------------------------------
class PostgresStore:
    """A PostgreSQL repository; see :class:`encompass_core.store.protocol.Store`."""

    backend = BACKEND

    def __init__(self, dsn: str, *, lease: float = pg_lease.LEASE_SECONDS,
                 renew: float = pg_lease.RENEW_SECONDS) -> None:
        self._dsn = dsn
        self.where = describe(dsn)
        self._idle: list[psycopg.Connection] = []
        self._migrated = False
        self.leases = pg_lease.LeaseKeeper(self._connect, lease=lease, renew=renew)
        self._started: float | None = None

    def __repr__(self) -> str:  # never the DSN
        return f"<PostgresStore {self.where}>"

    def _error(self, exc: BaseException, doing: str) -> StoreError:
        message = redact(str(exc).strip().replace("\n", " "), self._dsn)
        return StoreError(f"PostgreSQL repository {self.where}: {doing}: {message}")

    def _connect(self) -> psycopg.Connection:
        try:
            return psycopg.connect(self._dsn, autocommit=True, connect_timeout=10,
                                   application_name="encompass")
        except psycopg.Error as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StoreError(
                f"cannot reach the PostgreSQL repository {self.where}: {redact(reason, self._dsn)}"
                "; check that the server runs and [store] dsn_env / dsn_file in encompass.toml"
            ) from None

    @contextlib.contextmanager
    def _connection(self) -> Iterator[psycopg.Connection]:
        conn = self._idle.pop() if self._idle else self._connect()
        try:
            if not self._migrated:
                try:
                    pg_schema.migrate(conn, self.where)
                except psycopg.Error as exc:
                    raise self._error(exc, "cannot set up its schema") from None
                self._migrated = True
            yield conn
        finally:
            if conn.closed or conn.broken:
                pass
            elif conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
                self._idle.append(conn)
            else:
                conn.close()

    @contextlib.contextmanager
    def _transaction(self, begin: str, locking: bool) -> Iterator[PostgresTransaction]:
        with self._connection() as conn:
            try:
                conn.execute(begin)
            except psycopg.Error as exc:
                raise self._error(exc, "cannot start a transaction") from None
            try:
                tx = PostgresTransaction(conn, self, locking)
                yield tx
                tx.flush()
            except BaseException as exc:
                with contextlib.suppress(psycopg.Error):
                    conn.execute("ROLLBACK")
                if isinstance(exc, errors.DeadlockDetected | errors.SerializationFailure):
                    raise self._error(exc, "a concurrent change got in the way, nothing was "
                                           "changed; run the command again") from None
                if isinstance(exc, psycopg.Error):
                    raise self._error(exc, "the transaction failed, nothing was changed") from None
                raise
            try:
                conn.execute("COMMIT")
            except psycopg.Error as exc:
                raise self._error(exc, "cannot commit, nothing was changed") from None

    def transaction(self) -> contextlib.AbstractContextManager[PostgresTransaction]:
        """A writing transaction (row locks on what it reads)."""
        return self._transaction("BEGIN", locking=True)

    def snapshot(self) -> contextlib.AbstractContextManager[PostgresTransaction]:
        """A read-only consistent view."""
        return self._transaction("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", locking=False)

    def is_this_process(self, owner: Owner) -> bool:
        """Whether ``owner`` is this very process (its pid and start time)."""
        if owner.pid != os.getpid():
            return False
        if self._started is None:
            self._started = process_start_time(os.getpid()) or 0.0
        return float(owner.started) == self._started

    def owner_alive(self, owner: Owner) -> bool | None:
        """On this host, whether the process runs; for another host, whether its lease is live."""
        if owner.host == host_identity():
            started = process_start_time(owner.pid)
            return started is not None and (owner.started == 0.0 or started == owner.started)
        with self._connection() as conn:
            try:
                return pg_lease.alive(conn, owner)
            except psycopg.Error as exc:
                raise self._error(exc, "cannot read owners' leases") from None

    def close(self) -> None:
        """Drop the leases and close connections."""
        self.leases.close(self._idle[-1] if self._idle else None)
        while self._idle:
            with contextlib.suppress(psycopg.Error):
                self._idle.pop().close()

