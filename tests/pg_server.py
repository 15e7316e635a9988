"""A real PostgreSQL server for tests: Debian's ``initdb`` + ``postgres`` in a temporary directory.

The server runs as the unprivileged ``postgres`` user (PostgreSQL refuses root), listens on
127.0.0.1 and a free port, trusts local connections, and is stopped (a fast shutdown) and its
directory removed when the session ends, whatever happened; if the test process is killed, the
kernel tells the server to quit (it is a child with a parent-death signal, not a daemon), and the
next start removes the directory it left (:func:`sweep_stale`).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

USER = "postgres"
#: Temporary directories are named PREFIX + random; HOLDER inside names the process that made one.
PREFIX = "encompass-pg-"
HOLDER = "holder"


def binaries() -> Path | None:
    """The newest ``/usr/lib/postgresql/*/bin`` holding initdb and postgres, or None."""
    found = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/pg_ctl")]
    found.sort(key=lambda bindir: int(bindir.parent.name) if bindir.parent.name.isdigit() else 0)
    return found[-1] if found else None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _as_user(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(["runuser", "-u", USER, "--", *command], capture_output=True, text=True,
                          check=False, **kwargs)


def _start_time(pid: int) -> str | None:
    """The start time (clock ticks since boot) of process ``pid``, or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22, counted after the command name


def sweep_stale(parent: Path | None = None) -> list[Path]:
    """Remove the directories of servers whose test process was killed (SIGKILL skips our
    ``finally``); a directory whose holder still runs, or that records no holder yet, is kept."""
    removed = []
    for root in Path(parent or tempfile.gettempdir()).glob(PREFIX + "*"):
        try:
            pid, started = (root / HOLDER).read_text().split()
        except (OSError, ValueError):
            continue
        if _start_time(int(pid)) != started:  # gone, or the pid now names another process
            shutil.rmtree(root, ignore_errors=True)
            removed.append(root)
    return removed


class PostgresServer:
    """One running server: :meth:`dsn` for a database, :meth:`create_database` for a fresh one."""

    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.port = port
        self.data = root / "data"
        self.log = root / "server.log"
        self._count = 0

    def dsn(self, database: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user={USER} dbname={database}"

    def create_database(self, prefix: str = "t") -> str:
        """A new empty database; its name."""
        import psycopg

        self._count += 1
        name = f"{prefix}{os.getpid()}_{self._count}"
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name


def _wait_ready(server: PostgresServer, postmaster: subprocess.Popen, bindir: Path,
                timeout: float = 60) -> None:
    """Until the server accepts connections; its log's tail in the error if it died or never did."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if postmaster.poll() is not None:
            break
        done = subprocess.run([str(bindir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(server.port)],
                              check=False)
        if done.returncode == 0:
            return
        time.sleep(0.1)
    log = server.log.read_text(errors="replace") if server.log.exists() else ""
    raise RuntimeError(f"PostgreSQL did not start on port {server.port}:\n{log[-2000:]}")


def _stop(postmaster: subprocess.Popen) -> None:
    """A fast shutdown (SIGINT), then SIGKILL if it has not ended within 30 s."""
    if postmaster.poll() is None:
        postmaster.send_signal(signal.SIGINT)
        try:
            postmaster.wait(timeout=30)
        except subprocess.TimeoutExpired:
            postmaster.kill()
            postmaster.wait()


@contextlib.contextmanager
def running_server() -> Iterator[PostgresServer]:
    """Start a server in a new temporary directory; stop it and remove the directory at the end."""
    bindir = binaries()
    if bindir is None:
        raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql; "
                           "./setup_plugins --test does it)")
    account = pwd.getpwnam(USER)
    sweep_stale()
    # /tmp itself is world-traversable; pytest's own tmp directories (0700 root) are not.
    root = Path(tempfile.mkdtemp(prefix=PREFIX))
    (root / HOLDER).write_text(f"{os.getpid()} {_start_time(os.getpid())}\n")
    os.chown(root, account.pw_uid, account.pw_gid)
    server = PostgresServer(root, free_port())
    postmaster = None
    try:
        done = _as_user([str(bindir / "initdb"), "-D", str(server.data), "-A", "trust", "-U", USER,
                         "--no-sync", "-E", "UTF8"])
        if done.returncode:
            raise RuntimeError(f"initdb failed: {done.stderr.strip()}")
        # The postmaster is this process's child, not a daemon (pg_ctl start would detach it):
        # --pdeathsig makes it shut down at once (SIGQUIT) if pytest itself is killed.
        command = ["setpriv", f"--reuid={account.pw_uid}", f"--regid={account.pw_gid}",
                   "--init-groups", "--pdeathsig=QUIT", str(bindir / "postgres"), "-D", str(server.data),
                   "-p", str(server.port), "-k", str(root), "-c", "listen_addresses=127.0.0.1",
                   "-c", "fsync=off", "-c", "max_connections=200"]
        with open(server.log, "ab") as log:
            postmaster = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                          start_new_session=True)
        _wait_ready(server, postmaster, bindir)
        yield server
    finally:
        if postmaster is not None:
            _stop(postmaster)
        shutil.rmtree(root, ignore_errors=True)


# -- pytest fixtures (imported by tests/conftest.py) ---------------------------------------------
#: The variable the tests' encompass.toml names in ``[store] dsn_env`` (CLI subprocesses inherit it).
DSN_VAR = "TEST_PG_DSN"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session (started when a test first needs it)."""
    with running_server() as server:
        yield server


@pytest.fixture
def pg_dsn(pg_server: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """The DSN of a fresh, empty database, also in ``$TEST_PG_DSN``."""
    dsn = pg_server.dsn(pg_server.create_database())
    monkeypatch.setenv(DSN_VAR, dsn)
    return dsn


def use_postgresql(home: Path, var: str = DSN_VAR) -> None:
    """Point the repository in ``home`` at the PostgreSQL database ``$var`` names."""
    config = home / "encompass.toml"
    with config.open("a", encoding="utf-8") as out:
        out.write(f'\n[store]\nbackend = "postgresql"\ndsn_env = "{var}"\n')
