"""The PostgreSQL repository's schema and its migrations.

The schema is a list of numbered steps (:data:`MIGRATIONS`); ``schema_version`` records how
many were applied. :func:`migrate` applies the missing ones in one transaction, under an
advisory lock so that two processes meeting a fresh database do not both create it, and
refuses a database newer than this Encompass.
"""

from __future__ import annotations

from typing import Any

from ..errors import StoreError

#: Step ``n`` (1-based) brings a database from version ``n - 1`` to ``n``. Never edit a step
#: once released: append a new one.
MIGRATIONS: tuple[str, ...] = (
    # 1: images as JSONB documents with the columns operations ask about, the volumes' backing
    # (which images keep another from being deleted), history, machines, owners' leases.
    """
    CREATE TABLE images (
        id      bigserial PRIMARY KEY,          -- creation order
        doc     jsonb NOT NULL,
        name    text GENERATED ALWAYS AS (doc->>'name') STORED NOT NULL UNIQUE,
        kind    text GENERATED ALWAYS AS (doc->>'kind') STORED,
        state   text GENERATED ALWAYS AS (doc->>'state') STORED,
        master  text GENERATED ALWAYS AS (doc->>'master') STORED,
        parent  text GENERATED ALWAYS AS (doc->>'parent') STORED,
        machine text GENERATED ALWAYS AS (doc->>'machine') STORED
    );
    CREATE INDEX images_kind ON images (kind);
    CREATE INDEX images_state ON images (state);
    CREATE INDEX images_master ON images (master);
    CREATE INDEX images_parent ON images (parent);
    CREATE INDEX images_machine ON images (machine);

    -- image reads through a volume of backing (a copy-on-write overlay): kept beside the
    -- document so that "who depends on X" is one indexed lookup.
    CREATE TABLE backing (
        image   text NOT NULL,
        backing text NOT NULL,
        PRIMARY KEY (image, backing)
    );
    CREATE INDEX backing_backing ON backing (backing);

    CREATE TABLE events (
        id    bigserial PRIMARY KEY,            -- appended, never rewritten
        image text NOT NULL,
        doc   jsonb NOT NULL
    );
    CREATE INDEX events_image ON events (image, id);

    CREATE TABLE machines (
        id       bigserial PRIMARY KEY,
        doc      jsonb NOT NULL,
        name     text GENERATED ALWAYS AS (doc->>'name') STORED NOT NULL UNIQUE,
        platform text GENERATED ALWAYS AS (doc->>'platform') STORED,
        image    text GENERATED ALWAYS AS (doc->>'image') STORED
    );
    CREATE INDEX machines_platform ON machines (platform);
    CREATE INDEX machines_image ON machines (image);

    -- A process holding images renews its lease; once expired its operations may be repaired
    -- from any host. Times are the server's, so hosts' clocks need not agree.
    CREATE TABLE leases (
        host    text NOT NULL,
        pid     integer NOT NULL,
        started double precision NOT NULL,
        expires timestamptz NOT NULL,
        PRIMARY KEY (host, pid, started)
    );
    """,
)

SCHEMA = len(MIGRATIONS)
# pg_advisory_xact_lock key for migrations (any constant; "ENCOMPAS" in ASCII).
_MIGRATION_LOCK = 0x454E434F4D504153


def migrate(conn: Any, where: str) -> int:
    """Bring the database ``conn`` reaches to :data:`SCHEMA`; return the version found.

    ``conn`` is an autocommit psycopg connection; ``where`` names the database in messages.
    """
    found = _version(conn, where)
    if found == SCHEMA:
        return found
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)")
        row = conn.execute("SELECT version FROM schema_version").fetchone()
        found = row[0] if row else 0
        if found > SCHEMA:
            raise _too_new(found, where)
        for step in range(found, SCHEMA):
            conn.execute(MIGRATIONS[step])
        if row is None:
            conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (SCHEMA,))
        else:
            conn.execute("UPDATE schema_version SET version = %s", (SCHEMA,))
    return found


def _version(conn: Any, where: str) -> int:
    """The database's schema version, 0 for an empty one (nothing is created here)."""
    exists = conn.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()[0]
    if not exists:
        return 0
    row = conn.execute("SELECT version FROM schema_version").fetchone()
    found = row[0] if row else 0
    if found > SCHEMA:
        raise _too_new(found, where)
    return found


def _too_new(found: int, where: str) -> StoreError:
    return StoreError(
        f"the PostgreSQL repository{' ' + where if where else ''} has schema version {found}, this "
        f"Encompass understands {SCHEMA}; upgrade Encompass"
    )
