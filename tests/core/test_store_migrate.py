"""``encompass store migrate``: a repository moved to PostgreSQL and back with nothing lost."""

from __future__ import annotations

import signal
import subprocess
import time
import tomllib

import attrs
import psycopg
import pytest
from pg_server import DSN_VAR

from conftest import ENCOMPASS, assert_one_line_error, cli_env, image_records
from encompass_core.model import Event, Image, Machine, StorageJob
from encompass_core.store import Store

#: Every migration here starts from the embedded backend (the repository `encompass init` makes).
pytestmark = pytest.mark.tinydb_only

SECRET = "s3cret-pw-never-shown"


def store_table(home) -> dict:
    return tomllib.loads((home / "encompass.toml").read_text()).get("store", {})


def everything(run_cli, names) -> tuple[dict, dict]:
    """What a user sees: every image, and the history of each."""
    histories = {}
    for name in names:
        result = run_cli("image", "history", name, "--json")
        assert result.code == 0, result.err
        histories[name] = result.json()
    return image_records(run_cli), histories


def repository_contents(home) -> dict[str, list]:
    """Every image, event and machine of the repository ``home`` is configured for, as documents."""
    from encompass_core import config
    from encompass_core.convert import to_document
    from encompass_core.store import open_store

    store = open_store(home, config.load(home / config.CONFIG_NAME))
    try:
        with store.snapshot() as tx:
            return {"backend": store.backend,
                    "images": [to_document(i) for i in tx.images()],
                    "events": [to_document(e) for e in tx.events()],
                    "machines": [to_document(m) for m in tx.machines()]}
    finally:
        store.close()


def add_clones(home, master: str, count: int) -> None:
    """``count`` clones of ``master`` as a bulk clone records them, with three events each, and a
    sample of what else a repository holds (errors, inputs, applied items, a job, machines).
    Written through the store: a migration moves records and never touches volumes."""
    store = Store(home / "metadata.json")
    with store.transaction() as tx:
        base = tx.image(master)
        clones, events = [], []
        for n in range(1, count + 1):
            name = f"vm{n}"
            volumes = tuple(attrs.evolve(v, location=f"{v.location}.{name}.qcow2", format="qcow2",
                                         backing=(master, v.index), depth=1, readonly=False)
                            for v in base.volumes)
            failed = n % 97 == 0
            clones.append(Image(
                name=name, kind="clone", state="error" if failed else "ready", master=master,
                parent=master, master_version=base.version, volumes=volumes,
                inputs={"hostname": name, "ip": f"10.0.{n // 256}.{n % 256}"},
                applied={"hostname": {"value": name}} if n % 3 == 0 else {},
                jobs=(StorageJob(pool="local", index=0, id=f"job-{n}"),) if n % 250 == 0 else (),
                error=f"customize of {name} failed: disk full" if failed else None))
            events += [Event(image=name, kind="transition", message="clone started", operation="clone",
                             from_state="new", to_state="cloning", pid=4000 + n),
                       Event(image=name, kind="transition", message="cloned", operation="clone",
                             from_state="cloning", to_state="ready"),
                       Event(image=name, kind="operation", message=f"customized ({n})",
                             operation="customize", details={"items": ["hostname"], "n": n})]
        tx.add_images(clones)
        for event in events:
            tx.add_event(event)
        for n in (1, 500, count):
            tx.put_machine(Machine(name=f"node{n}", platform="kvm", image=f"vm{n}",
                                   macs=[f"52:54:00:00:{n // 256:02x}:{n % 256:02x}"]))
    store.close()


def test_a_thousand_images_move_to_postgresql_and_back_with_nothing_lost(
        run_cli, master, encompass_home, pg_dsn, monkeypatch) -> None:
    # The DSN carries a password (the test server trusts local users and ignores it).
    monkeypatch.setenv(DSN_VAR, f"{pg_dsn} password={SECRET}")
    assert run_cli("clone", master, "--count", "2", "--prefix", "web").code == 0  # real ones too
    add_clones(encompass_home, master, 1000)
    before = repository_contents(encompass_home)
    names = ["web1", "vm777"]  # what a user sees of two; the documents compare every one
    seen = everything(run_cli, names)
    assert (before["backend"], len(before["images"]), len(before["machines"])) == ("tinydb", 1003, 3)
    assert len(before["events"]) > 3000

    moved = run_cli("store", "migrate", "--to", "postgresql", "--dsn-env", DSN_VAR)

    assert moved.code == 0, moved.err
    assert "copied 1003 images" in moved.err and "every document checked" in moved.err
    assert store_table(encompass_home) == {"backend": "postgresql", "dsn_env": DSN_VAR}
    on_postgresql = repository_contents(encompass_home)  # now read from PostgreSQL
    assert on_postgresql == {**before, "backend": "postgresql"}
    assert everything(run_cli, names) == seen
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM images").fetchone()[0] == 1003
        machine = conn.execute("SELECT doc->>'image' FROM machines WHERE name = 'node500'").fetchone()
        assert machine == ("vm500",)
    # The repository is in use on PostgreSQL: a new clone lands there.
    assert run_cli("clone", master, "web999").code == 0
    before_back = repository_contents(encompass_home)
    seen_back = everything(run_cli, [*names, "web999"])

    back = run_cli("store", "migrate", "--to", "tinydb")

    assert back.code == 0, back.err
    assert "copied 1004 images" in back.err
    assert store_table(encompass_home) == {"backend": "tinydb"}
    assert repository_contents(encompass_home) == {**before_back, "backend": "tinydb"}
    assert everything(run_cli, [*names, "web999"]) == seen_back
    for result in (moved, back):
        assert SECRET not in result.out + result.err
    assert SECRET not in (encompass_home / "encompass.toml").read_text()


def test_a_target_holding_records_is_refused(run_cli, master, encompass_home, pg_dsn) -> None:
    assert run_cli("store", "migrate", "--to", "postgresql", "--dsn-env", DSN_VAR).code == 0
    assert run_cli("store", "migrate", "--to", "tinydb").code == 0
    toml = (encompass_home / "encompass.toml").read_text()

    again = run_cli("store", "migrate", "--to", "postgresql", "--dsn-env", DSN_VAR)

    assert_one_line_error(again, "not empty", "--replace")
    assert (encompass_home / "encompass.toml").read_text() == toml
    replaced = run_cli("store", "migrate", "--to", "postgresql", "--dsn-env", DSN_VAR, "--replace")
    assert replaced.code == 0, replaced.err
    assert list(image_records(run_cli)) == [master]


def test_bad_requests_are_one_line(run_cli, master, monkeypatch) -> None:
    assert_one_line_error(run_cli("store", "migrate", "--to", "postgresql"), "--dsn-env")
    assert_one_line_error(run_cli("store", "migrate", "--to", "tinydb"), "tinydb already")
    unset = run_cli("store", "migrate", "--to", "postgresql", "--dsn-env", "NO_SUCH_VARIABLE")
    assert_one_line_error(unset, "NO_SUCH_VARIABLE", "not set")
    monkeypatch.setenv("BAD_DSN", f"host=127.0.0.1 port=1 dbname=x password={SECRET}")
    unreachable = run_cli("store", "migrate", "--to", "postgresql", "--dsn-env", "BAD_DSN")
    assert_one_line_error(unreachable, "cannot reach the PostgreSQL repository 127.0.0.1:1/x")
    assert SECRET not in unreachable.err


def test_an_interrupted_migration_leaves_the_source_untouched_and_in_use(
        run_cli, master, encompass_home, pg_dsn) -> None:
    assert run_cli("clone", master, "--count", "20", "--prefix", "web").code == 0
    before = image_records(run_cli)
    toml = (encompass_home / "encompass.toml").read_text()
    # Hold the events table so the copy stops half-way, inside its transaction.
    blocker = psycopg.connect(pg_dsn)
    from encompass_core.store.pg_schema import migrate as create_schema

    with psycopg.connect(pg_dsn, autocommit=True) as setup:
        create_schema(setup, "test")
    blocker.execute("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
    migrating = subprocess.Popen(
        [str(ENCOMPASS), "store", "migrate", "--to", "postgresql", "--dsn-env", DSN_VAR],
        env=cli_env(encompass_home), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        with psycopg.connect(pg_dsn, autocommit=True) as watch:
            while not watch.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                                    "'encompass' AND wait_event_type = 'Lock'").fetchone()[0]:
                assert time.monotonic() < deadline, "the migration never reached the events"
                time.sleep(0.05)
        migrating.send_signal(signal.SIGKILL)
        migrating.wait(timeout=30)
    finally:
        if migrating.poll() is None:
            migrating.kill()
        blocker.rollback()
        blocker.close()

    assert (encompass_home / "encompass.toml").read_text() == toml
    assert image_records(run_cli) == before
    assert run_cli("clone", master, "web99").code == 0  # still in use
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM images").fetchone()[0] == 0
