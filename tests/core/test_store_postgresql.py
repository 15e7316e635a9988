"""PostgreSQL as the store: row locks instead of a global lock, owners' leases across hosts,
several processes cloning at once, schema versions, and a DSN that is never shown."""

from __future__ import annotations

import signal
import subprocess
import threading
import time

import attrs
import psycopg
import pytest

from conftest import ENCOMPASS, assert_one_line_error, cli_env, image_records
from encompass_core.errors import StoreError
from encompass_core.model import Image, Owner, Volume
from encompass_core.store.postgresql import PostgresStore, redact

SECRET = "pw-that-must-not-show"


def image(name: str) -> Image:
    return Image(name=name, kind="master", state="ready", version=1,
                 volumes=[Volume(index=0, pool="local", format="raw", location=f"/p/{name}")])


def test_a_transaction_locks_the_rows_it_reads_and_nothing_else(pg_dsn) -> None:
    first, second = PostgresStore(pg_dsn), PostgresStore(pg_dsn)
    with first.transaction() as tx:
        tx.add_images([image("base"), image("other")])
    holding, release = threading.Event(), threading.Event()

    def take_base() -> None:
        with first.transaction() as tx:
            base = tx.image("base")
            holding.set()
            release.wait(30)
            tx.put_image(attrs.evolve(base, state="disabled"))

    holder = threading.Thread(target=take_base)
    holder.start()
    try:
        assert holding.wait(30)
        # Another image is not held up: there is no repository-wide lock.
        started = time.monotonic()
        with second.transaction() as tx:
            tx.put_image(attrs.evolve(tx.image("other"), state="disabled"))
        assert time.monotonic() - started < 2
        # The held image waits for its holder, then sees what it wrote (no lost update).
        assert _waits_for(release, lambda: _state_in_transaction(second, "base")) == "disabled"
    finally:
        release.set()
        holder.join(30)
        first.close()
        second.close()


def test_an_image_only_read_is_shared_and_keeps_writers_waiting(pg_dsn) -> None:
    # As clone reads its source: several processes cloning one master do not queue on it, but
    # a change of the master (delete, disable) waits until they have recorded their clones.
    first, second, third = PostgresStore(pg_dsn), PostgresStore(pg_dsn), PostgresStore(pg_dsn)
    with first.transaction() as tx:
        tx.add_images([image("base")])
    holding, release = threading.Event(), threading.Event()

    def read_base() -> None:
        with first.transaction() as tx:
            tx.image("base", shared=True)
            holding.set()
            release.wait(30)

    holder = threading.Thread(target=read_base)
    holder.start()
    try:
        assert holding.wait(30)
        started = time.monotonic()
        with second.transaction() as tx:
            assert tx.image("base", shared=True).state == "ready"
        assert time.monotonic() - started < 2
        assert _waits_for(release, lambda: _disable(third, "base")) == "disabled"
    finally:
        release.set()
        holder.join(30)
        for store in (first, second, third):
            store.close()


def _disable(store: PostgresStore, name: str) -> str:
    with store.transaction() as tx:
        tx.put_image(attrs.evolve(tx.image(name), state="disabled"))
    with store.snapshot() as tx:
        return tx.image(name).state


def _state_in_transaction(store: PostgresStore, name: str) -> str:
    with store.transaction() as tx:
        return tx.image(name).state


def test_a_lease_is_live_while_renewed_and_gone_once_expired(pg_dsn, monkeypatch) -> None:
    store = PostgresStore(pg_dsn, lease=1.5, renew=0.2)
    from encompass_core.store import current_owner

    owner = current_owner("clone", "new")
    with store.transaction() as tx:
        tx.add_image(attrs.evolve(image("web1"), state="cloning", owner=owner))
    elsewhere = PostgresStore(pg_dsn)
    monkeypatch.setenv("ENCOMPASS_HOST", "another-host")  # the reader is on another host
    time.sleep(2)  # longer than the lease: only renewal keeps it live
    assert elsewhere.owner_alive(owner) is True
    store.close()  # the process lets go (at exit): its lease goes with it
    assert elsewhere.owner_alive(owner) is False
    stranger = Owner(pid=1, host="third-host", started=1.0, operation="clone", since="", previous_state="new")
    assert elsewhere.owner_alive(stranger) is False  # never leased
    elsewhere.close()


LEASE = 4


#: Tests of what PostgreSQL alone does (leases across hosts, its schema version).
ON_POSTGRESQL = pytest.mark.postgresql_only


@pytest.fixture
def two_hosts(run_cli, encompass_home, pg_dsn):
    """The repository on PostgreSQL with short leases; ``run_on(host, *args)`` runs the CLI as
    that host."""
    with (encompass_home / "encompass.toml").open("a") as out:
        out.write(f"lease_seconds = {LEASE}\nlease_renew_seconds = 0.5\n")

    def run_on(host: str, *args: str):
        return run_cli(*args, env={"ENCOMPASS_HOST": host})

    return run_on


@ON_POSTGRESQL
def test_repair_on_another_host_waits_for_the_lease_then_reclaims(store_backend, two_hosts, master,
                                                                   encompass_home, pg_dsn) -> None:
    cloning = subprocess.Popen([str(ENCOMPASS), "clone", master, "--count", "60", "--prefix", "web"],
                               env=cli_env(encompass_home, {"ENCOMPASS_HOST": "host-a"}),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with psycopg.connect(pg_dsn, autocommit=True) as watch:
            deadline = time.monotonic() + 60
            while not watch.execute("SELECT count(*) FROM images WHERE state = 'cloning'").fetchone()[0]:
                assert time.monotonic() < deadline and cloning.poll() is None, "never caught cloning"
                time.sleep(0.01)
        cloning.send_signal(signal.SIGKILL)  # host-a dies mid-clone
        killed = time.monotonic()
        cloning.wait(timeout=30)
    finally:
        if cloning.poll() is None:
            cloning.kill()

    early = two_hosts("host-b", "repair", "--json")

    assert early.code == 0, early.err
    assert time.monotonic() - killed < LEASE, "too slow to see the lease live"
    held = [s for s in early.json()["images"] if s["host"] == "host-a"]
    assert held and {s["owner"] for s in held} == {"alive"}
    assert all("left alone" in s["action"] for s in held)
    assert any(row["state"] == "cloning" for row in image_records(run_cli_of(two_hosts)).values())

    deadline = time.monotonic() + LEASE + 30
    while True:  # the lease runs out: host-b takes over
        result = two_hosts("host-b", "repair", "--json")
        assert result.code == 0, result.err
        if result.json()["images"] and {s["owner"] for s in result.json()["images"]} == {"gone"}:
            break
        assert time.monotonic() < deadline, result.out
        time.sleep(0.3)
    assert time.monotonic() - killed >= LEASE - 0.5
    images = image_records(run_cli_of(two_hosts))
    assert not [n for n, row in images.items() if row["state"] == "cloning"]
    assert images[master]["state"] == "ready"
    assert two_hosts("host-b", "clone", master, "after").code == 0  # the repository carries on


def run_cli_of(run_on):
    return lambda *args: run_on("host-b", *args)


def test_four_processes_cloning_at_once_lose_no_update(store_backend, run_cli, master,
                                                       encompass_home) -> None:
    batches = [[f"{prefix}{i}" for i in range(1, 9)] for prefix in ("a", "b", "c", "d")]
    env = cli_env(encompass_home)
    clones = [subprocess.Popen([str(ENCOMPASS), "clone", master, *names, "--parallel", "2"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
              for names in batches]
    for process in clones:
        _out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err

    images = image_records(run_cli)
    assert sorted(images) == sorted([master, *(n for batch in batches for n in batch)])
    assert {row["state"] for row in images.values()} == {"ready"}
    history = run_cli("image", "history", "c8", "--json")
    assert history.code == 0 and [e["to_state"] for e in history.json()][-1] == "ready"


@ON_POSTGRESQL
def test_a_database_of_a_newer_schema_is_refused(store_backend, run_cli, pg_dsn, encompass_home) -> None:
    assert run_cli("image", "list").code == 0  # creates the schema
    with psycopg.connect(pg_dsn) as conn:
        conn.execute("UPDATE schema_version SET version = 99")

    result = run_cli("image", "list")

    assert_one_line_error(result, "schema version 99", "upgrade Encompass")


@pytest.mark.tinydb_only  # starts from a TinyDB home and points it at a missing database
def test_the_dsn_password_never_shows(run_cli, pg_server, encompass_home, monkeypatch) -> None:
    monkeypatch.setenv("TEST_PG_DSN", f"host=127.0.0.1 port={pg_server.port} user=postgres "
                       f"dbname=missing password={SECRET}")
    from pg_server import use_postgresql

    use_postgresql(encompass_home)

    result = run_cli("image", "list")

    assert_one_line_error(result, "127.0.0.1", "missing")
    assert SECRET not in result.err
    url = f"postgresql://enc:{SECRET}@db/x"
    assert redact(f"bad: {url}", url) == "bad: db:5432/x"
    assert SECRET not in redact(f"near password={SECRET}", f"dbname=x password='{SECRET}'")
    with pytest.raises(StoreError) as caught, PostgresStore(
            f"host=127.0.0.1 port=1 password={SECRET}").snapshot():
        pass
    assert SECRET not in str(caught.value)


def _waits_for(release: threading.Event, call) -> str:
    """``call()`` run in a thread: it must still wait after 0.5 s (the row is held), and finish
    once ``release`` lets the holder go; what it returned."""
    seen: list[str] = []
    waiter = threading.Thread(target=lambda: seen.append(call()))
    waiter.start()
    waiter.join(0.5)
    assert waiter.is_alive() and seen == [], "it did not wait for the holder"
    release.set()
    waiter.join(30)
    assert len(seen) == 1, "it did not finish once the holder let go"
    return seen[0]
