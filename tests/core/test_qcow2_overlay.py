"""Copy-on-write overlays written in-process are the files qemu-img makes, and QEMU reads them."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conftest import MIB, image_records, qemu_info, qemu_io, volume_path
from encompass_core.drivers import qcow2_overlay

GIB = 1 << 30


def qemu_img(*args: str | Path) -> str:
    done = subprocess.run(["qemu-img", *map(str, args)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def bare_overlay(path: Path, size: int, backing: Path, fmt: str) -> Path:
    qemu_img("create", "-q", "-f", "qcow2", "-u", "-F", fmt, "-b", backing, path, str(size))
    return path


def described(path: Path) -> dict:
    """What qemu-img says of an overlay, less its own file name and allocation."""
    info = qemu_info(path)
    for key in ("filename", "actual-size", "dirty-flag"):
        info.pop(key, None)
    return info


def qemu_img_7_2() -> bool:
    return qemu_img("--version").startswith("qemu-img version 7.2")


@pytest.mark.parametrize(("size", "fmt"), [
    (32 * MIB, "raw"), (3 * GIB, "raw"), (512 * MIB + 512, "raw"), (32 * MIB, "qcow2"),
    (4096 * GIB, "raw"),  # the largest whose L1 table fits one cluster
])
def test_the_overlay_is_what_qemu_img_create_makes(tmp_path, size, fmt) -> None:
    backing = tmp_path / f"master.{fmt}"
    if fmt == "raw":
        subprocess.run(["truncate", "-s", str(size), str(backing)], check=True)
    else:
        qemu_img("create", "-q", "-f", "qcow2", backing, str(size))
    theirs = bare_overlay(tmp_path / "theirs.qcow2", size, backing, fmt)
    ours = tmp_path / "ours.qcow2"

    qcow2_overlay.write_overlay(ours, size, str(backing), fmt)

    assert described(ours) == described(theirs)
    info = qemu_info(ours)
    assert (info["virtual-size"], info["cluster-size"]) == (size, 65536)
    assert (info["backing-filename"], info["backing-filename-format"]) == (str(backing), fmt)
    assert info["format-specific"]["data"]["refcount-bits"] == 16
    check = json.loads(qemu_img("check", "--output=json", ours))
    assert (check["check-errors"], check.get("leaks", 0), check.get("corruptions", 0)) == (0, 0, 0)
    assert ours.stat().st_mode == theirs.stat().st_mode
    if qemu_img_7_2():  # the version whose layout it follows: byte for byte the same file
        assert ours.read_bytes() == theirs.read_bytes()


def test_reads_go_to_the_backing_chain_and_writes_stay_in_the_overlay(tmp_path) -> None:
    master = tmp_path / "master.raw"
    subprocess.run(["truncate", "-s", str(64 * MIB), str(master)], check=True)
    qemu_io(master, "write -P 0x5a 1M 3M")
    middle, top = tmp_path / "middle.qcow2", tmp_path / "top.qcow2"
    qcow2_overlay.write_overlay(middle, 64 * MIB, str(master), "raw")
    qcow2_overlay.write_overlay(top, 64 * MIB, str(middle), "qcow2")

    chain = json.loads(qemu_img("info", "--backing-chain", "--output=json", top))
    assert [(c["filename"], c["format"]) for c in chain] == [
        (str(top), "qcow2"), (str(middle), "qcow2"), (str(master), "raw")]
    qemu_img("compare", "-q", master, top)  # the same disk, read through two overlays
    qemu_io(top, "write -P 0xab 0 64k")
    qemu_io(top, "read -P 0xab 0 64k")
    qemu_io(top, "read -P 0x5a 1M 3M")
    qemu_io(middle, "read -P 0 0 64k")  # the write went into the top overlay only
    qemu_img("check", "-q", top)


@pytest.mark.parametrize(("size", "backing", "fmt"), [
    (32 * MIB + 1, "/m.raw", "raw"),          # not whole sectors: qemu-img rounds it up
    (4097 * GIB, "/m.raw", "raw"),            # an L1 table of more than one cluster
    (0, "/m.raw", "raw"),
    (32 * MIB, "m.raw", "raw"),               # a relative name
    (32 * MIB, "/" + "m" * 1023, "raw"),      # longer than QEMU takes
    (32 * MIB, "/m.vmdk", "vmdk"),
])
def test_anything_unusual_is_left_to_qemu_img(size, backing, fmt) -> None:
    assert not qcow2_overlay.can_write(size, backing, fmt)
    with pytest.raises(ValueError):
        qcow2_overlay.overlay_bytes(size, backing, fmt)


def test_an_existing_file_is_never_overwritten(tmp_path) -> None:
    there = tmp_path / "there.qcow2"
    there.write_bytes(b"keep")
    with pytest.raises(FileExistsError):
        qcow2_overlay.write_overlay(there, 32 * MIB, "/m.raw", "raw")
    assert there.read_bytes() == b"keep"


def test_a_clone_of_an_odd_sized_master_still_gets_qemu_img_s_overlay(run_cli, tmp_path) -> None:
    disk = tmp_path / "odd.raw"
    disk.write_bytes(b"\x5a" * (MIB + 100))  # not whole sectors: the in-process writer declines
    assert run_cli("master", "import", "odd", disk).code == 0

    result = run_cli("clone", "odd", "c1", "c2", "--parallel", "2")

    assert result.code == 0, result.err
    assert {image_records(run_cli)[n]["state"] for n in ("c1", "c2")} == {"ready"}
    clone = volume_path(run_cli, "c1")
    assert qemu_info(clone)["virtual-size"] >= MIB + 100
    qemu_img("check", "-q", clone)
    qemu_io(clone, "read -P 0x5a 0 1M")
