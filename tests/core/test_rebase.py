"""Rebase: a clone rebuilt on a newer master version keeps its name, its customization (secret
inputs given again, never stored) and its data volume, and rolls back; killed mid-update or
mid-rebase, ``encompass repair`` leaves the old state intact."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import assert_one_line_error, cli_env

SECRET_OLD = "Old-s3cret-rebase-41"
SECRET_NEW = "New-s3cret-rebase-42"

# Run the CLI with one step of an operation (a module's function or a class's method) made to
# wait forever once it has run a given number of times, so that the test can kill it there
# with SIGKILL, as a crash would.
STALLED_CLI = """
import importlib, sys, time
path, let_through = sys.argv[1].split("."), int(sys.argv[2])
for cut in range(len(path) - 1, 0, -1):
    try:
        owner = importlib.import_module(".".join(path[:cut]))
        break
    except ImportError:
        continue
for name in path[cut:-1]:
    owner = getattr(owner, name)
real, calls = getattr(owner, path[-1]), []
def stall(*args, **kwargs):
    calls.append(args)
    if len(calls) > let_through:
        print("stalled", flush=True)
        time.sleep(600)
    return real(*args, **kwargs)
setattr(owner, path[-1], stall)
from encompass_core.cli import main
main(sys.argv[3:])
"""


def disk(tmp_path: Path, release: str) -> Path:
    """A qcow2 disk holding an ext4 filesystem with /etc/hostname, /etc/release, /etc/rootpw."""
    root = tmp_path / f"root-{release}"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "hostname").write_text("master\n")
    (root / "etc" / "release").write_text(f"{release}\n")
    (root / "etc" / "rootpw").write_text("master-password\n")
    raw = tmp_path / f"{release}.raw"
    subprocess.run(["mke2fs", "-q", "-t", "ext4", "-d", str(root), str(raw), "16M"], check=True)
    qcow2 = tmp_path / f"{release}.qcow2"
    subprocess.run(["qemu-img", "convert", "-O", "qcow2", str(raw), str(qcow2)], check=True)
    return qcow2


def cat(run_cli, name: str, path: str, volume: int = 0) -> str:
    result = run_cli("image", "cat", name, path, "--volume", volume)
    assert result.code == 0, result.err
    return result.out


def show(run_cli, name: str) -> dict:
    result = run_cli("image", "show", name, "--json")
    assert result.code == 0, result.err
    return result.json()


@pytest.fixture
def clones(run_cli, tmp_path: Path, pool_dir: Path) -> list[str]:
    """Master 'base' v1 (a qcow2 system disk and a data tree, volume 1) with items hostname,
    rootpw (secret) and dbname (on the data volume); web1 and web2 customized, web1's data
    written by its application; then base updated to v2 from a new disk."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "db.conf").write_text("name=none\n")
    assert run_cli("master", "import", "base", disk(tmp_path, "v1"), data, "--data-volume", 1).code == 0
    for item in (("hostname", "--path", "/etc/hostname"),
                 ("rootpw", "--path", "/etc/rootpw", "--secret"),
                 ("dbname", "--path", "/db.conf", "--volume", 1)):
        assert run_cli("master", "items", "add", "base", item[0], "--type", "file", *item[1:]).code == 0
    assert run_cli("clone", "base", "web1", "web2").code == 0
    done = run_cli("customize", "web1", "web2", "--set", "hostname={clone}", "--set",
                   f"rootpw={SECRET_OLD}", "--set", "dbname=name=prod")
    assert done.code == 0, done.err
    (pool_dir / "web1" / "vol1" / "rows").write_text("web1's own rows\n")
    updated = run_cli("master", "update", "base", "--import", disk(tmp_path, "v2"))
    assert updated.code == 0, updated.err
    return ["web1", "web2"]


def test_a_rebased_clone_has_the_new_files_its_hostname_and_its_data_and_rolls_back(
        run_cli, clones, encompass_home, pool_dir):
    before = show(run_cli, "web1")
    refused = run_cli("rebase", "web1")  # the secret was never stored: it must be given again
    assert_one_line_error(refused, "missing input", "web1: rootpw", "--set")
    assert refused.code == 2
    assert show(run_cli, "web1")["master_version"] == 1

    rebased = run_cli("rebase", "web1", "--set", f"rootpw={SECRET_NEW}", "--json")
    assert rebased.code == 0, rebased.err
    [result] = rebased.json()
    assert (result["state"], result["from_version"], result["to_version"], result["carried"]) == (
        "ready", 1, 2, [1])
    assert cat(run_cli, "web1", "/etc/release") == "v2\n"
    assert cat(run_cli, "web1", "/etc/hostname") == "web1\n"
    assert cat(run_cli, "web1", "/etc/rootpw") == f"{SECRET_NEW}\n"
    assert cat(run_cli, "web1", "/rows", volume=1) == "web1's own rows\n"
    assert cat(run_cli, "web1", "/db.conf", volume=1) == "name=prod\n"
    after = show(run_cli, "web1")
    assert after["volumes"][1] == before["volumes"][1]  # the data volume itself, untouched
    assert after["volumes"][0]["location"] != before["volumes"][0]["location"]
    assert after["volumes"][0]["backing"] == ["base", 0]  # a copy-on-write clone, as it was
    assert (after["master_version"], after["parent"], after["created"]) == (2, "base", before["created"])
    assert Path(before["volumes"][0]["location"]).exists()  # kept for a rollback
    assert cat(run_cli, "web2", "/etc/release") == "v1\n"
    history = run_cli("image", "history", "web1", "--json").json()
    assert history[0]["message"].startswith("cow clone of 'base'")  # the same history, extended
    assert "rebased from version 1 onto version 2" in history[-1]["message"]
    for path in encompass_home.rglob("*"):  # neither secret is kept anywhere in the metadata
        if path.is_file() and "pool" not in path.parts:
            text = path.read_bytes()
            assert SECRET_NEW.encode() not in text and SECRET_OLD.encode() not in text, path
    for name in ("web1", "web2"):
        record = run_cli("image", "show", name, "--json").out
        record += run_cli("image", "history", name, "--json").out
        assert SECRET_NEW not in record and SECRET_OLD not in record

    rolled = run_cli("rebase", "web1", "--rollback")
    assert rolled.code == 0, rolled.err
    assert cat(run_cli, "web1", "/etc/release") == "v1\n"
    assert cat(run_cli, "web1", "/etc/rootpw") == f"{SECRET_OLD}\n"
    assert cat(run_cli, "web1", "/rows", volume=1) == "web1's own rows\n"
    assert show(run_cli, "web1")["volumes"] == before["volumes"]
    assert not Path(after["volumes"][0]["location"]).exists()
    assert_one_line_error(run_cli("rebase", "web1", "--rollback"), "nothing to roll back")


@pytest.mark.tinydb_only  # the bulk path is the store's as customize's is (tested on both)
def test_every_outdated_clone_is_rebased_in_one_command(run_cli, clones, tmp_path, pool_dir):
    values = tmp_path / "secrets.toml"
    values.write_text(f'rootpw = "{SECRET_NEW}"\n')
    assert [r["name"] for r in run_cli("image", "list", "--outdated", "--json").json()] == clones
    done = run_cli("rebase", "--all-outdated", "base", "--values", values, "--parallel", 2, "--json")
    assert done.code == 0, done.err
    assert [(r["name"], r["state"], r["to_version"]) for r in done.json()] == [
        ("web1", "ready", 2), ("web2", "ready", 2)]
    for name in clones:
        assert cat(run_cli, name, "/etc/release") == "v2\n"
        assert cat(run_cli, name, "/etc/hostname") == f"{name}\n"
    assert run_cli("image", "list", "--outdated", "--json").json() == []
    again = run_cli("rebase", "--all-outdated", "base")
    assert again.code == 0 and "no outdated clones" in again.err
    # A clone still keeping its old volumes is refused, alone: the others are not held back.
    assert run_cli("master", "update", "base", "--import", disk(tmp_path, "v3")).code == 0
    assert run_cli("rebase", "web2", "--discard-old").code == 0
    mixed = run_cli("rebase", "--all-outdated", "base", "--values", values, "--json")
    assert mixed.code == 4, mixed.err
    states = {r["name"]: (r["state"], r["error"]) for r in mixed.json()}
    assert states["web2"] == ("ready", None)
    assert states["web1"][0] == "error" and "--discard-old" in states["web1"][1]


@contextlib.contextmanager
def stalled(encompass_home: Path, function: str, *args: str, let_through: int = 0,
            env: dict[str, str] | None = None) -> Iterator[subprocess.Popen]:
    """``encompass ARGS`` running, stalled in ``function`` (after ``let_through`` calls), for
    the block; SIGKILLed there after it."""
    process = subprocess.Popen([sys.executable, "-c", STALLED_CLI, function, str(let_through), *args],
                               env=cli_env(encompass_home, env), stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline() == "stalled\n"
        yield process
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def kill_stalled(encompass_home: Path, function: str, *args: str, let_through: int = 0,
                 env: dict[str, str] | None = None) -> None:
    """Run ``encompass ARGS`` with ``function`` stalled (after ``let_through`` calls), and
    SIGKILL it there."""
    with stalled(encompass_home, function, *args, let_through=let_through, env=env):
        pass


def test_killed_mid_update_or_mid_rebase_repair_leaves_the_old_state(run_cli, clones, encompass_home,
                                                                     pool_dir, tmp_path):
    before = show(run_cli, "web1")
    kill_stalled(encompass_home, "encompass_core.operations.rebase._apply",
                 "rebase", "web1", "--set", f"rootpw={SECRET_NEW}")
    assert show(run_cli, "web1")["state"] == "rebasing"
    assert (pool_dir / "web1.v2").exists()  # its new volumes were made when it was killed
    assert_one_line_error(run_cli("rebase", "web1", "--set", "rootpw=x"), "busy (rebasing)", "repair")

    kill_stalled(encompass_home, "encompass_core.operations.versions._revert_customization",
                 "master", "update", "base", "--from", "web2")
    assert show(run_cli, "base")["state"] == "updating"
    assert (pool_dir / "base.v3").exists()

    repaired = run_cli("repair", "--json")
    assert repaired.code == 0, repaired.err
    actions = {s["name"]: s["action"] for s in repaired.json()["images"]}
    assert "half-made volumes 'web1.v2' removed" in actions["web1"]
    assert "half-made volumes 'base.v3' removed" in actions["base"]
    web1, base = show(run_cli, "web1"), show(run_cli, "base")
    assert (web1["state"], web1["master_version"], web1["volumes"], web1["applied"].keys()) == (
        "ready", 1, before["volumes"], before["applied"].keys())
    assert web1["making"] is None and web1["previous"] is None
    assert (base["state"], base["version"], base["making"]) == ("ready", 2, None)
    assert not (pool_dir / "web1.v2").exists() and not (pool_dir / "base.v3").exists()
    assert cat(run_cli, "web1", "/etc/release") == "v1\n"

    # What a user does next works as if nothing had happened.
    assert run_cli("rebase", "web1", "--set", f"rootpw={SECRET_NEW}").code == 0
    assert cat(run_cli, "web1", "/etc/release") == "v2\n"
    assert run_cli("master", "update", "base", "--from", "web2").code == 0
    assert run_cli("master", "versions", "base", "--json").json()[-1]["number"] == 3


def test_a_clone_of_a_clone_is_rebased_keeping_its_lineage(run_cli, clones):
    assert run_cli("clone", "web2", "web2b").code == 0  # reads through web2 (copy-on-write)
    assert_one_line_error(run_cli("rebase", "web2", "--set", "rootpw=x"), "read through it", "web2b")

    assert run_cli("rebase", "web2b", "--set", f"rootpw={SECRET_NEW}").code == 0
    rebased = show(run_cli, "web2b")
    assert (rebased["parent"], rebased["master_version"]) == ("web2", 2)
    assert cat(run_cli, "web2b", "/etc/release") == "v2\n"
    assert cat(run_cli, "web2b", "/etc/hostname") == "web2\n"  # the input it inherited
    # Its old volumes still read through web2: web2 is kept until they are discarded.
    assert_one_line_error(run_cli("image", "delete", "web2"), "web2b")
    # Un-customizing restores the files of its own version of the master, not web2's (version 1).
    assert run_cli("uncustomize", "web2b", "--item", "hostname").code == 0
    assert cat(run_cli, "web2b", "/etc/hostname") == "master\n"
    assert cat(run_cli, "web2b", "/etc/release") == "v2\n"
    assert run_cli("rebase", "web2b", "--discard-old").code == 0
    assert run_cli("image", "delete", "web2").code == 0
