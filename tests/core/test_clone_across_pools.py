"""Cloning a master onto another pool: natively when the target driver can, else streamed by the
core (the source pool exposes, the target pool writes), with progress and throughput shown, holes
kept, and nothing half-written left when the stream breaks. Two local pools in two folders are
two pools: a full copy between them is streamed; a copy-on-write clone is a native overlay."""

from __future__ import annotations

import os
import re
import resource
import signal
import subprocess
from pathlib import Path

import pytest

from conftest import ENCOMPASS, MIB, cli_env, make_qcow2_master, qemu_info, qemu_io

DATA = os.urandom(MIB)


def add_pool(home: Path, name: str, folder: Path) -> None:
    with open(home / "encompass.toml", "a", encoding="utf-8") as config:
        config.write(f'\n[pools.{name}]\ndriver = "local"\npath = "{folder}"\n')


def sparse_disk(path: Path, size_mib: int, data_mib: list[tuple[int, int]],
                zeros_mib: tuple[int, int] | None = None) -> Path:
    """A sparse raw file: ``size_mib`` long, data at each (start, length) in MiB, and a run of
    written zeros (allocated, but nothing in it) at ``zeros_mib``."""
    with open(path, "wb") as disk:
        disk.truncate(size_mib * MIB)
        for start, length in data_mib:
            for mib in range(start, start + length):
                disk.seek(mib * MIB)
                disk.write(DATA)
        if zeros_mib:
            disk.seek(zeros_mib[0] * MIB)
            disk.write(bytes(zeros_mib[1] * MIB))
    return path


@pytest.fixture
def other_pool(encompass_home: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "other-pool"
    add_pool(encompass_home, "other", folder)
    return folder


def test_a_full_clone_onto_another_pool_is_streamed_sparse_with_progress(
        run_cli, encompass_home, other_pool, tmp_path):
    source = sparse_disk(tmp_path / "base.raw", 256, [(0, 8), (100, 24), (255, 1)], zeros_mib=(40, 16))
    assert run_cli("master", "import", "base", source).code == 0

    result = run_cli("clone", "base", "web01", "--pool", "other", "--mode", "full")

    assert result.code == 0, result.err
    clone = other_pool / "web01" / "vol0.raw"
    assert subprocess.run(["cmp", str(source), str(clone)]).returncode == 0
    # Holes stay holes, and the 16 MiB of written zeros become one: only the 33 MiB of data land.
    assert clone.stat().st_size == 256 * MIB
    assert clone.stat().st_blocks * 512 <= 34 * MIB < source.stat().st_blocks * 512
    # Progress with throughput while it goes, and a summary of the stream.
    assert re.search(r"web01: 256\.0 MiB of 256\.0 MiB \(100%\) at [\d.]+ [KMG]iB/s", result.err), result.err
    assert re.search(r"web01: streamed 256\.0 MiB between pools in [\d.]+ s \([\d.]+ [KMG]iB/s\)",
                     result.err), result.err
    shown = run_cli("image", "show", "web01", "--json").json()
    assert shown["volumes"][0]["pool"] == "other" and shown["volumes"][0]["location"] == str(clone)
    history = run_cli("image", "history", "web01").out
    assert "streamed 256.0 MiB from pool 'local'" in history
    listed = run_cli("clone", "base", "web02", "--pool", "other", "--mode", "full", "--json").json()
    assert listed[0]["copied"] == 256 * MIB and listed[0]["state"] == "ready"


def test_a_copy_on_write_clone_onto_another_local_pool_is_a_native_overlay(
        run_cli, encompass_home, other_pool, tmp_path):
    source = sparse_disk(tmp_path / "base.raw", 64, [(0, 4)])
    assert run_cli("master", "import", "base", source).code == 0

    result = run_cli("clone", "base", "web01", "--pool", "other", "--mode", "cow")

    assert result.code == 0, result.err
    assert "streamed" not in result.err
    overlay = other_pool / "web01" / "vol0.qcow2"
    assert qemu_info(overlay)["backing-filename"] == str(encompass_home / "pool" / "base" / "vol0.raw")


def test_a_clone_of_a_clone_is_streamed_through_its_whole_chain(run_cli, encompass_home, other_pool,
                                                                tmp_path):
    assert run_cli("master", "import", "base", make_qcow2_master(tmp_path / "base.qcow2")).code == 0
    assert run_cli("clone", "base", "layer").code == 0  # a qcow2 overlay in the default pool
    layer = encompass_home / "pool" / "layer" / "vol0.qcow2"
    qemu_io(layer, "write -P 0x6b 8M 1M")

    result = run_cli("clone", "layer", "copy", "--pool", "other", "--mode", "full")

    assert result.code == 0, result.err
    copy = other_pool / "copy" / "vol0.qcow2"
    assert "backing-filename" not in qemu_info(copy)  # independent of the chain it was read through
    compared = subprocess.run(["qemu-img", "compare", "-q", str(layer), str(copy)])
    assert compared.returncode == 0


def test_a_stream_that_breaks_on_a_full_target_leaves_no_half_written_volume(
        run_cli, encompass_home, other_pool, tmp_path):
    source = sparse_disk(tmp_path / "base.raw", 128, [(0, 4), (60, 40)])
    assert run_cli("master", "import", "base", source).code == 0

    def small_disk():
        # Files of this process may not grow past 32 MiB: the target fills up half-way.
        resource.setrlimit(resource.RLIMIT_FSIZE, (32 * MIB, 32 * MIB))

    done = subprocess.run([str(ENCOMPASS), "clone", "base", "web01", "--pool", "other", "--mode", "full"],
                          env=cli_env(encompass_home), capture_output=True, text=True, timeout=120,
                          preexec_fn=small_disk)

    assert done.returncode == 7
    assert "Traceback" not in done.stderr
    assert re.search(r"web01: cannot copy .*base/vol0\.raw into pool 'other': File too large",
                     done.stderr), done.stderr
    assert run_cli("image", "show", "web01", "--json").json()["state"] == "error"
    assert list(other_pool.rglob("*.partial")) == [] and list(other_pool.rglob("vol*")) == []
    assert run_cli("image", "delete", "web01").code == 0


def test_a_stream_killed_half_way_is_removed_by_repair(run_cli, encompass_home, other_pool, tmp_path):
    source = sparse_disk(tmp_path / "base.raw", 1024, [(0, 1024)])
    assert run_cli("master", "import", "base", source).code == 0
    command = [str(ENCOMPASS), "clone", "base", "web01", "--pool", "other", "--mode", "full"]
    cloning = subprocess.Popen(command, env=cli_env(encompass_home), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    try:
        first = cloning.stderr.readline()  # the first progress line: the stream has begun
        assert re.match(r"web01: [\d.]+ [KMG]iB of 1\.0 GiB", first), first
    finally:
        cloning.send_signal(signal.SIGKILL)
        cloning.wait()
        cloning.stderr.close()
    partial = other_pool / "web01" / ".vol0.raw.partial"
    assert partial.exists() and not (other_pool / "web01" / "vol0.raw").exists()
    assert run_cli("image", "show", "web01", "--json").json()["state"] == "cloning"

    repaired = run_cli("repair")

    assert repaired.code == 0, repaired.err
    assert "web01" not in {row["name"] for row in run_cli("image", "list", "--json").json()}
    assert not (other_pool / "web01").exists()
