"""Owners' leases in a PostgreSQL repository: how any host tells a live operation from a dead one.

A process that takes an image into a transitional state records itself as the owner (host, pid,
start time) and, in the same transaction, a lease in ``leases``. A background thread of that
process renews the lease every ``renew`` seconds to ``lease`` seconds ahead; the process removes
it when it exits. Another host cannot see the process, but it can read the lease: alive while it
is renewed, gone once it has expired (a killed process, a crashed host, a lost network). Times
are the database server's, so hosts' clocks need not agree.
"""

from __future__ import annotations

import atexit
import contextlib
import threading
from collections.abc import Callable
from typing import Any

from ..model import Owner

#: Defaults of ``[store] lease_seconds`` and ``[store] lease_renew_seconds``.
LEASE_SECONDS = 60.0
RENEW_SECONDS = 10.0

_UPSERT = """
    INSERT INTO leases (host, pid, started, expires)
    VALUES (%s, %s, %s, now() + make_interval(secs => %s))
    ON CONFLICT (host, pid, started) DO UPDATE SET expires = EXCLUDED.expires
"""


def _key(owner: Owner) -> tuple[str, int, float]:
    return owner.host, owner.pid, float(owner.started)


def alive(conn: Any, owner: Owner) -> bool:
    """Whether ``owner``'s lease is live (renewed and not expired) in the repository."""
    row = conn.execute(
        "SELECT expires > now() FROM leases WHERE host = %s AND pid = %s AND started = %s",
        _key(owner),
    ).fetchone()
    return bool(row and row[0])


class LeaseKeeper:
    """This process's leases: taken with the images it holds, renewed by a thread, dropped at exit."""

    def __init__(self, connect: Callable[[], Any], lease: float = LEASE_SECONDS,
                 renew: float = RENEW_SECONDS) -> None:
        self._connect = connect
        self.lease = float(lease)
        self.renew = float(renew)
        self._keys: set[tuple[str, int, float]] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def take(self, conn: Any, owner: Owner) -> None:
        """Record (or extend) ``owner``'s lease inside the caller's transaction on ``conn``, and
        keep renewing it from now on."""
        key = _key(owner)
        conn.execute(_UPSERT, (*key, self.lease))
        with self._lock:
            self._keys.add(key)
            if self._thread is None:
                self._stop = threading.Event()
                self._thread = threading.Thread(target=self._run, name="encompass-lease", daemon=True)
                self._thread.start()
                atexit.register(self.close)

    def _run(self) -> None:
        conn = None
        while not self._stop.wait(self.renew):
            try:
                if conn is None or conn.closed:
                    conn = self._connect()
                with self._lock:
                    keys = list(self._keys)
                for key in keys:
                    conn.execute(
                        "UPDATE leases SET expires = now() + make_interval(secs => %s) "
                        "WHERE host = %s AND pid = %s AND started = %s", (self.lease, *key))
            except Exception:  # the server is away: try again next round (the lease may lapse)
                with contextlib.suppress(Exception):
                    conn.close()
                conn = None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def close(self, conn: Any = None) -> None:
        """Stop renewing and remove this process's leases: a process that ended holds nothing.
        ``conn``: an idle autocommit connection to use (else one is opened for it)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=5)
        with self._lock:
            keys, self._keys = list(self._keys), set()
        if not keys:
            return
        with contextlib.suppress(Exception):
            own = conn is None
            conn = self._connect() if own else conn
            try:
                for key in keys:
                    conn.execute("DELETE FROM leases WHERE host = %s AND pid = %s AND started = %s", key)
            finally:
                if own:
                    conn.close()
