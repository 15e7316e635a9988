"""``encompass store migrate``: a repository moved to PostgreSQL and back with nothing lost."""

from __future__ import annotations

import signal
import subprocess
import time
import tomllib

import psycopg
from pg_server import DSN_VAR

from conftest import ENCOMPASS, assert_one_line_error, cli_env, image_records
from encompass_core.model import Machine
from encompass_core.store import Store

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


def test_a_repository_moves_to_postgresql_and_back_with_nothing_lost(
        run_cli, master, encompass_home, pg_dsn, monkeypatch) -> None:
    # The DSN carries a password (the test server trusts local users and ignores it).
    monkeypatch.setenv(DSN_VAR, f"{pg_dsn} password={SECRET}")
    for prefix in ("web", "db"):
        result = run_cli("clone", master, "--count", "150", "--prefix", prefix)
        assert result.code == 0, result.err
    with Store(encompass_home / "metadata.json").transaction() as tx:
        tx.put_machine(Machine(name="blade3", platform="chassis", kind="physical", image="web7",
                               macs=["52:54:00:00:00:07"]))
    names = [master, "web1", "web150", "db77"]
    before = everything(run_cli, names)
    assert len(before[0]) == 301

    moved = run_cli("store", "migrate", "--to", "postgresql", "--dsn-env", DSN_VAR)

    assert moved.code == 0, moved.err
    assert "copied 301 images" in moved.err and "every document checked" in moved.err
    assert store_table(encompass_home) == {"backend": "postgresql", "dsn_env": DSN_VAR}
    assert everything(run_cli, names) == before  # now read from PostgreSQL
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM images").fetchone()[0] == 301
        assert conn.execute("SELECT doc->>'image' FROM machines").fetchone()[0] == "web7"
    # The repository is in use on PostgreSQL: a new clone lands there.
    assert run_cli("clone", master, "web999").code == 0
    before_back = everything(run_cli, [*names, "web999"])

    back = run_cli("store", "migrate", "--to", "tinydb")

    assert back.code == 0, back.err
    assert store_table(encompass_home) == {"backend": "tinydb"}
    assert everything(run_cli, [*names, "web999"]) == before_back
    with Store(encompass_home / "metadata.json").snapshot() as tx:
        assert tx.find_machine("blade3").macs == ("52:54:00:00:00:07",)
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
