"""The metadata store: atomic writes, corrupt files left alone, no update lost between processes."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ENCOMPASS, assert_one_line_error, cli_env, image_records
from encompass_core.model import Machine
from encompass_core.store import Store

PAYLOAD_BYTES = 2 << 20

# A writer that commits transactions with a big payload in a loop, and appends the number of
# each one to a progress file once it is committed.
WRITER = f"""
import os, sys
from pathlib import Path
from encompass_core.model import Machine
from encompass_core.store import Store

store = Store(Path(sys.argv[1]))
progress = os.open(sys.argv[2], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
with store.snapshot() as tx:
    found = tx.find_machine("m")
seq = found.extra["seq"] if found else 0
while True:
    seq += 1
    payload = (str(seq) * {PAYLOAD_BYTES})[:{PAYLOAD_BYTES}]
    with store.transaction() as tx:
        tx.put_machine(Machine(name="m", platform="p", extra={{"seq": seq, "payload": payload}}))
    os.write(progress, b"%d\\n" % seq)
"""


def wait_for(predicate, timeout: float = 30.0, what: str = "condition"):
    """Poll ``predicate`` until it returns something true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def committed(progress: Path) -> int:
    try:
        lines = progress.read_text().split()
    except FileNotFoundError:
        return 0
    return int(lines[-1]) if lines else 0


def test_a_writer_killed_mid_write_leaves_the_last_committed_file(tmp_path: Path) -> None:
    metadata = tmp_path / "metadata.json"
    progress = tmp_path / "progress"
    chance = random.Random()
    for _round in range(5):
        target = committed(progress) + chance.randint(1, 3)
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(metadata), str(progress)])
        try:
            wait_for(lambda t=target: committed(progress) >= t, what="commits")
            time.sleep(chance.uniform(0, 0.05))  # land at a random point of a write
        finally:
            writer.send_signal(signal.SIGKILL)
            writer.wait()
        last = committed(progress)

        json.loads(metadata.read_text())  # whole, valid JSON: never a truncated file
        with Store(metadata).snapshot() as tx:
            machine = tx.find_machine("m")
        # The transaction in flight may have been renamed in before its number was reported.
        assert machine.extra["seq"] in (last, last + 1)
        assert machine.extra["payload"] == (str(machine.extra["seq"]) * PAYLOAD_BYTES)[:PAYLOAD_BYTES]
    assert committed(progress) >= 5

    # What killed writers left half-written is swept by the next transaction.
    stale = tmp_path / ".metadata.json.killed.tmp"
    stale.write_text('{"half": ')
    with Store(metadata).transaction() as tx:
        tx.remove_machine("nothing")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def write_metadata(home: Path, text: str) -> bytes:
    (home / "metadata.json").write_text(text)
    return (home / "metadata.json").read_bytes()


@pytest.mark.tinydb_only
@pytest.mark.parametrize("damaged", ["metadata.json", "the shard of the master"])
def test_a_corrupt_metadata_file_is_named_and_left_untouched(run_cli, master, encompass_home,
                                                             damaged) -> None:
    metadata = encompass_home / "metadata.json"
    if damaged != "metadata.json":
        [metadata] = [p for p in (encompass_home / "metadata.d").glob("images-*.json")
                      if b'"base"' in p.read_bytes()]
    whole = metadata.read_bytes()
    corrupt = whole[:len(whole) // 2]  # as if cut short by a crash of another tool
    metadata.write_bytes(corrupt)

    for command in (("image", "list"), ("clone", "base", "web01"), ("repair",)):
        result = run_cli(*command)
        assert result.code == 5
        assert_one_line_error(result, str(metadata), "corrupt")
        assert metadata.read_bytes() == corrupt


@pytest.mark.tinydb_only  # PostgreSQL: test_a_database_of_a_newer_schema_is_refused
def test_an_unknown_schema_version_is_refused(run_cli, encompass_home) -> None:
    before = write_metadata(encompass_home, json.dumps({"_meta": {"1": {"schema": 99}}, "images": {}}))

    result = run_cli("image", "list")

    assert result.code == 5
    assert_one_line_error(result, "schema version 99", "upgrade Encompass")
    assert (encompass_home / "metadata.json").read_bytes() == before


def test_two_processes_cloning_at_once_lose_no_update(run_cli, master, encompass_home) -> None:
    batches = [[f"{prefix}{i}" for i in range(1, 11)] for prefix in ("a", "b")]
    env = cli_env(encompass_home)
    clones = [
        subprocess.Popen([str(ENCOMPASS), "clone", master, *names, "--parallel", "2"], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for names in batches
    ]
    for process in clones:
        _out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err

    images = image_records(run_cli)
    assert sorted(images) == sorted([master, *batches[0], *batches[1]])
    assert {row["state"] for row in images.values()} == {"ready"}


def test_a_writer_killed_between_its_two_renames_leaves_no_stray_file(tmp_path: Path) -> None:
    metadata = tmp_path / "metadata.json"
    with Store(metadata).transaction() as tx:
        tx.remove_machine("nothing")  # creates the file
    # Killed after renaming the backup into place, before renaming the new file: the backup
    # and the current file are then one file under two names.
    backup = tmp_path / "metadata.json.bak"
    backup.unlink(missing_ok=True)
    os.link(metadata, backup)

    with Store(metadata).transaction() as tx:
        tx.put_machine(Machine(name="m", platform="p"))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "metadata.d", "metadata.json", "metadata.json.bak", "metadata.json.lock"]
    with Store(metadata).snapshot() as tx:
        assert tx.find_machine("m") is not None
