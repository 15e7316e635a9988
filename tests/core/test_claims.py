"""Claims: a clone a machine runs (or may still run) is never changed or deleted; repair releases
stale claims and removes the clones a killed bulk clone never finished."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import attrs

from conftest import ENCOMPASS, cli_env, image_records, volume_path
from encompass_core.context import Context
from encompass_core.model import Machine


def put_machine(home: Path, machine: Machine) -> None:
    """Record a machine as `encompass discover` would (no platform runs in core tests)."""
    with Context(home).store.transaction() as tx:
        tx.put_machine(machine)


def left_running(home: Path, clone: str, machine: str) -> None:
    """What an undeploy that could not reach the platform leaves: the clone in error, still
    claiming the machine, and the machine's record claiming the clone."""
    put_machine(home, Machine(name=machine, platform="gone", power="on", image=clone))
    with Context(home).store.transaction() as tx:
        image = tx.image(clone)
        tx.put_image(attrs.evolve(image, state="error", machine=machine,
                                  error="undeploy: cannot reach libvirt"))


def test_a_clone_a_machine_may_still_run_is_neither_changed_nor_deleted(run_cli, master,
                                                                         encompass_home):
    assert run_cli("clone", master, "web01").code == 0
    assert run_cli("master", "items", "add", master, "motd", "--type", "file",
                   "--path", "/motd").code == 0
    disk = volume_path(run_cli, "web01")
    left_running(encompass_home, "web01", "vm1")

    for command in (("customize", "web01", "--set", "motd=hi"), ("uncustomize", "web01"),
                    ("image", "delete", "web01")):
        refused = run_cli(*command)
        assert refused.code != 0, (command, refused)
        assert "machine 'vm1' runs it" in refused.err + refused.out, (command, refused)
        assert "encompass undeploy web01" in refused.err + refused.out
        assert "encompass repair" in refused.err + refused.out
    assert run_cli("image", "flatten", "web01").code == 4  # refused by its state already
    assert disk.exists()
    assert image_records(run_cli)["web01"]["state"] == "error"

    # The platform cannot be asked: repair says so and keeps the claim.
    repaired = run_cli("repair", "--json")
    assert repaired.code == 0, repaired.err
    [claim] = repaired.json()["claims"]
    assert (claim["machine"], claim["image"]) == ("vm1", "web01")
    assert "left alone" in claim["action"] and "not configured" in claim["finding"]
    assert run_cli("image", "delete", "web01").code == 4


def test_a_machine_claiming_a_deleted_image_is_released_by_repair(run_cli, master, encompass_home):
    put_machine(encompass_home, Machine(name="vm2", platform="gone", power="off", image="ghost"))

    dry = run_cli("repair", "--dry-run", "--json")
    assert dry.code == 0, dry.err
    assert [(c["machine"], c["image"], c["action"]) for c in dry.json()["claims"]] == [
        ("vm2", "ghost", "claim released")]
    assert run_cli("machine", "show", "vm2", "--json").json()["image"] == "ghost"

    repaired = run_cli("repair")
    assert repaired.code == 0, repaired.err
    assert "vm2" in repaired.out and "ghost" in repaired.out
    assert run_cli("machine", "show", "vm2", "--json").json()["image"] is None
    assert run_cli("repair", "--json").json() == {"images": [], "removals": [], "claims": [], "leftovers": []}


def test_a_bulk_clone_killed_leaves_no_unfinished_clone_and_no_partial_file(run_cli, tmp_path,
                                                                            encompass_home):
    # A master with real (non-sparse) data, so that each full copy takes a while.
    disk = tmp_path / "data.raw"
    with open(disk, "wb") as out:
        out.write(os.urandom(24 << 20))
    assert run_cli("master", "import", "big", disk).code == 0
    pool = encompass_home / "pool"
    names = [f"c{i}" for i in range(1, 41)]

    cloning = subprocess.Popen([str(ENCOMPASS), "clone", "big", "--count", "40", "--prefix", "c",
                                "--mode", "full", "--parallel", "2"],
                               env=cli_env(encompass_home), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not any((pool / n).exists() for n in names):  # the first copies have begun
        assert cloning.poll() is None and time.monotonic() < deadline, "the clone never began"
        time.sleep(0.01)
    cloning.send_signal(signal.SIGKILL)
    cloning.wait()

    before = image_records(run_cli)
    assert all(before[n]["state"] in ("cloning", "ready") for n in names)
    assert sum(before[n]["state"] == "cloning" for n in names) > 2  # some never begun

    repaired = run_cli("repair", "--json")
    assert repaired.code == 0, repaired.err
    assert {s["action"] for s in repaired.json()["images"]} == {"-> removed (done)"}

    after = image_records(run_cli)
    kept = [n for n in names if n in after]
    assert all(after[n]["state"] == "ready" for n in kept)  # those written back whole stay
    assert len(kept) < len(names)
    for name in names:
        if name in after:
            assert volume_path(run_cli, name).exists()
        else:
            assert not (pool / name).exists(), f"leftovers of {name}: {list((pool / name).iterdir())}"
    assert list(pool.rglob("*.partial")) == []
    assert run_cli("repair", "--json").json() == {"images": [], "removals": [], "claims": [], "leftovers": []}
    # The names are free again: the clones can be made anew.
    missing = [n for n in names if n not in after][:2]
    assert run_cli("clone", "big", *missing).code == 0
