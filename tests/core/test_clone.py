"""Cloning masters and clones: copy-on-write overlays, full copies, many at once, and failures."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest

from conftest import (
    ENCOMPASS,
    MIB,
    assert_one_line_error,
    cli_env,
    image_records,
    qemu_info,
    qemu_io,
    sha256,
    volume_path,
)


@pytest.mark.parametrize("disk", ["raw_disk", "qcow2_disk"])
def test_a_cow_clone_is_an_overlay_that_never_writes_into_the_master(run_cli, request, disk) -> None:
    assert run_cli("master", "import", "base", request.getfixturevalue(disk)).code == 0
    master_file = volume_path(run_cli, "base")
    master_sum = sha256(master_file)

    result = run_cli("clone", "base", "web01")
    assert result.code == 0, result.err
    clone_file = volume_path(run_cli, "web01")

    info = qemu_info(clone_file)
    assert info["format"] == "qcow2"
    assert info["backing-filename"] == str(master_file)
    assert info["backing-filename-format"] == qemu_info(master_file)["format"]
    qemu_io(clone_file, "write -P 0xab 0 64k")
    qemu_io(clone_file, "read -P 0xab 0 64k")  # fails unless the clone really holds the write
    assert sha256(master_file) == master_sum
    assert stat.S_IMODE(master_file.stat().st_mode) == 0o444
    assert image_records(run_cli)["web01"]["state"] == "ready"


def test_count_and_prefix_make_numbered_clones(run_cli, master) -> None:
    result = run_cli("clone", master, "--count", "5", "--prefix", "n")

    assert result.code == 0, result.err
    images = image_records(run_cli)
    assert sorted(images) == [master, "n1", "n2", "n3", "n4", "n5"]
    assert all(images[f"n{i}"]["state"] == "ready" and images[f"n{i}"]["parent"] == master
               for i in range(1, 6))


def set_max_chain_depth(home: Path, depth: int) -> None:
    config = home / "encompass.toml"
    text = config.read_text()
    assert "max_chain_depth = 8" in text
    config.write_text(text.replace("max_chain_depth = 8", f"max_chain_depth = {depth}"))


def test_the_chain_depth_limit_and_flatten(run_cli, master, encompass_home) -> None:
    set_max_chain_depth(encompass_home, 2)
    assert run_cli("clone", master, "c1").code == 0
    assert run_cli("clone", "c1", "c2").code == 0

    refused = run_cli("clone", "c2", "c3")
    assert refused.code == 4
    assert_one_line_error(refused, "3 deep", "--mode full", "encompass image flatten c2")
    assert "c3" not in image_records(run_cli)

    flattened = run_cli("image", "flatten", "c2")
    assert flattened.code == 0, flattened.err
    c2_file = volume_path(run_cli, "c2")
    assert "backing-filename" not in qemu_info(c2_file)
    same = subprocess.run(["qemu-img", "compare", "-q", "-U", str(volume_path(run_cli, master)),
                           str(c2_file)])
    assert same.returncode == 0  # flattening kept every byte it read through its parents

    allowed = run_cli("clone", "c2", "c3")
    assert allowed.code == 0, allowed.err
    assert qemu_info(volume_path(run_cli, "c3"))["backing-filename"] == str(c2_file)


def test_a_full_clone_of_a_sparse_raw_master_keeps_its_holes(run_cli, tmp_path) -> None:
    disk = tmp_path / "big.raw"
    subprocess.run(["truncate", "-s", "256M", str(disk)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(disk)], check=True)
    assert run_cli("master", "import", "big", disk).code == 0

    result = run_cli("clone", "big", "copy", "--mode", "full")

    assert result.code == 0, result.err
    master_file, copy_file = volume_path(run_cli, "big"), volume_path(run_cli, "copy")
    assert copy_file.suffix == ".raw" and "backing-filename" not in qemu_info(copy_file)
    assert copy_file.stat().st_size == 256 * MIB
    assert copy_file.stat().st_blocks * 512 < 32 * MIB
    assert sha256(copy_file) == sha256(master_file)
    assert os.access(copy_file, os.W_OK) and stat.S_IMODE(copy_file.stat().st_mode) == 0o644


def test_one_clone_failing_leaves_the_others_ready(run_cli, master, pool_dir) -> None:
    (pool_dir / "n3" / "vol0.qcow2").mkdir(parents=True)  # a real fault: the target is a folder

    result = run_cli("clone", master, "--count", "5", "--prefix", "n")

    assert result.code == 7
    assert "Traceback" not in result.err
    assert "4 clone(s) of 'base' ready, 1 failed" in result.err
    assert "n3: " in result.err and "Is a directory" in result.err
    images = image_records(run_cli)
    assert {n: images[n]["state"] for n in ("n1", "n2", "n3", "n4", "n5")} == {
        "n1": "ready", "n2": "ready", "n3": "error", "n4": "ready", "n5": "ready"}
    assert "Is a directory" in images["n3"]["error"]
    assert not list(pool_dir.rglob(".*.partial"))  # nothing half-made left behind


def test_ctrl_c_leaves_no_clone_stuck_in_cloning(run_cli, encompass_home, repository, tmp_path) -> None:
    disk = tmp_path / "full.raw"
    block = os.urandom(MIB)
    with disk.open("wb") as out:
        for _ in range(200):
            out.write(block)  # no holes: every clone copies 200 MiB
    assert run_cli("master", "import", "big", disk).code == 0
    disk.unlink()

    def clone_records() -> list:
        with repository.snapshot() as tx:  # the backend the CLI writes to, whichever it is
            return [i for i in tx.images() if not i.is_master]

    cloning = subprocess.Popen(
        [str(ENCOMPASS), "clone", "big", "--mode", "full", "--count", "40", "--prefix", "n",
         "--parallel", "2"],
        env=cli_env(encompass_home), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not clone_records() and cloning.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        assert cloning.poll() is None, "the clones finished before they could be interrupted"
        cloning.send_signal(signal.SIGINT)
        _out, err = cloning.communicate(timeout=120)
    finally:
        if cloning.poll() is None:
            cloning.kill()
            cloning.wait()

    assert cloning.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    states = {i.name: i.state for i in clone_records()}
    assert set(states.values()) <= {"ready", "error"}
    assert len(states) < 40
    # Every clone left on disk is a recorded one: the cancelled ones left nothing behind.
    on_disk = {p.name for p in (encompass_home / "pool").iterdir()} - {"big"}
    assert on_disk <= set(states), (err, states, list((encompass_home / "pool").rglob("*")))
    assert not list((encompass_home / "pool").rglob(".*.partial"))
