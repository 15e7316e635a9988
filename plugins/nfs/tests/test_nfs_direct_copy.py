"""Full clones from the export onto this host's pool, read by libnfs itself (the pool's
``open_reader``, the local pool's ``write_stream``) instead of through QEMU's FUSE view of the
``nfs://`` file: the same bytes, holes kept, progress shown, and a server that stops mid-copy
leaves one line and no file behind.

Each clone runs with a ``qemu-storage-daemon`` on PATH that refuses to start: the direct copy
does not need it (the old path would fail)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from nfs_testing import encompass_cli, make_driver, stop_mid_clone

from encompass_core.config import Config, Section
from encompass_core.drivers.local import LocalStorageDriver
from encompass_core.errors import DriverError
from encompass_core.testing import make_source_image

MIB = 1 << 20
DATA = bytes(range(256)) * (MIB // 256)  # a MiB with no zero block in it


def sparse_disk(path: Path, size_mib: int, data_mib: list[tuple[int, int]],
                zeros_mib: tuple[int, int]) -> Path:
    """``size_mib`` long, data at each (start, length) in MiB, written zeros at ``zeros_mib``."""
    with open(path, "wb") as disk:
        disk.truncate(size_mib * MIB)
        for start, length in data_mib:
            disk.seek(start * MIB)
            disk.write(DATA * length)
        disk.seek(zeros_mib[0] * MIB)
        disk.write(bytes(zeros_mib[1] * MIB))
    return path


@pytest.fixture
def no_fuse_view(tmp_path) -> dict[str, str]:
    """PATH with a qemu-storage-daemon that refuses to run, first."""
    folder = tmp_path / "no-fuse-bin"
    folder.mkdir()
    daemon = folder / "qemu-storage-daemon"
    daemon.write_text("#!/bin/sh\necho 'qemu-storage-daemon: not for this copy' >&2\nexit 1\n")
    daemon.chmod(0o755)
    return {"PATH": f"{folder}:{os.environ['PATH']}"}


@pytest.fixture
def encompass(server, tmp_path):
    return encompass_cli(tmp_path / "home", f'\n[pools.nas]\ndriver = "nfs"\nurl = "{server.url}"\n')


def local_file(encompass, name: str) -> Path:
    volume = json.loads(encompass("image", "show", name, "--json").stdout)["volumes"][0]
    assert volume["pool"] == "local"
    return Path(volume["location"])


def test_a_raw_volume_comes_to_this_host_whole_sparse_and_with_progress(server, encompass, tmp_path,
                                                                         no_fuse_view):
    source = sparse_disk(tmp_path / "base.raw", 64, [(0, 4), (30, 8), (63, 1)], zeros_mib=(10, 8))
    encompass("master", "import", "base", str(source), "--pool", "nas")

    done = encompass("clone", "base", "web01", "--pool", "local", "--mode", "full", extra=no_fuse_view)

    clone = local_file(encompass, "web01")
    assert subprocess.run(["cmp", str(source), str(clone)]).returncode == 0
    # 13 MiB of data; the holes and the 8 MiB of written zeros stay holes.
    assert clone.stat().st_size == 64 * MIB
    assert clone.stat().st_blocks * 512 <= 14 * MIB
    assert re.search(r"web01: 64\.0 MiB of 64\.0 MiB \(100%\) at [\d.]+ [KMG]iB/s", done.stderr), done.stderr
    assert re.search(r"web01: streamed 64\.0 MiB between pools in [\d.]+ s", done.stderr), done.stderr
    assert "streamed 64.0 MiB from pool 'nas'" in encompass("image", "history", "web01").stdout


def test_a_qcow2_that_reads_through_nothing_is_copied_as_it_is(server, encompass, tmp_path, no_fuse_view):
    raw = make_source_image(tmp_path / "base.raw")
    qcow2 = tmp_path / "base.qcow2"
    subprocess.run(["qemu-img", "convert", "-O", "qcow2", str(raw), str(qcow2)], check=True)
    encompass("master", "import", "base", str(qcow2), "--pool", "nas")

    encompass("clone", "base", "web01", "--pool", "local", "--mode", "full", extra=no_fuse_view)

    clone = local_file(encompass, "web01")
    assert clone.name == "vol0.qcow2"
    assert clone.read_bytes() == (server.export_dir / "base" / "vol0.qcow2").read_bytes()
    assert encompass("image", "cat", "web01", "/etc/hostname").stdout == "conformance\n"


def test_an_overlay_on_the_export_still_comes_whole_through_its_chain(server, encompass, tmp_path):
    encompass("master", "import", "base", str(make_source_image(tmp_path / "base.raw")), "--pool", "nas")
    encompass("clone", "base", "web01", "--pool", "nas")  # a qcow2 overlay on the export

    encompass("clone", "web01", "web01-here", "--pool", "local", "--mode", "full")

    assert encompass("image", "cat", "web01-here", "/etc/hostname").stdout == "conformance\n"
    assert local_file(encompass, "web01-here").name == "vol0.raw"


def test_a_server_stopped_mid_copy_is_one_line_and_leaves_no_file(server, encompass, tmp_path,
                                                                  no_fuse_view):
    source = sparse_disk(tmp_path / "big.raw", 512, [(0, 512)], zeros_mib=(0, 0))
    encompass("master", "import", "big", str(source), "--pool", "nas")
    rest = stop_mid_clone(server, {**encompass.env, **no_fuse_view}, "big", "web01", "local", "512.0 MiB")
    failure = [line for line in rest.splitlines() if line.strip().startswith("web01:")
               and "MiB of" not in line and "GiB of" not in line]
    assert len(failure) == 1 and "stopped answering" in failure[0], rest
    assert "Traceback" not in rest
    left = [path for path in (encompass.home / "pool").rglob("*") if path.is_file()]
    assert (encompass.home / "pool").is_dir() and left == []
    server.start()
    shown = encompass("image", "show", "web01", "--json").stdout
    assert '"error"' in shown


@pytest.fixture
def two_pools(server, tmp_path):
    """The nfs pool holding a 64 MiB master (no zero block in it) and a local pool, as drivers,
    without the core between them."""
    nas = make_driver(tmp_path, url=server.url)
    section = Section("local", "local", {"path": str(tmp_path / "pool")})
    config = Config(path=tmp_path / "encompass.toml", defaults={}, pools={"local": section}, platforms={})
    try:
        master = nas.import_volume("big", 0, sparse_disk(tmp_path / "big.raw", 64, [(0, 64)], (0, 0)))
        yield nas, master, LocalStorageDriver(section, config)
    finally:
        nas.close()


def test_the_reader_and_the_writer_meet_without_the_core(server, two_pools, tmp_path):
    """The seam itself, as the core uses it: a failure at the first bytes leaves nothing."""
    nas, master, local = two_pools
    seen = []

    def stop_at_first_bytes(done: int) -> None:
        seen.append(done)
        if len(seen) == 1:
            server.stop_server()

    with pytest.raises(DriverError) as failed, nas.open_reader(master) as reader:
        local.write_stream("copy", 0, reader, master.size, stop_at_first_bytes)
    message = str(failed.value)
    assert "\n" not in message and "pool 'nas'" in message and "stopped answering" in message
    assert not [path for path in (tmp_path / "pool").rglob("*") if path.is_file()]


def test_a_master_that_shrinks_mid_copy_is_one_line_naming_where_it_ended(server, two_pools, tmp_path):
    """The reader is asked for the size the metadata records; a file cut short on the server
    while it is read ends the copy with where it ended, and the target keeps nothing."""
    nas, master, local = two_pools
    on_server = server.export_dir / "big" / "vol0.raw"
    cut = 16 * MIB

    def cut_short_after_the_first_chunk(done: int) -> None:
        if on_server.stat().st_size > cut:
            os.truncate(on_server, cut)  # someone else's doing, behind the pool's back

    with pytest.raises(DriverError) as failed, nas.open_reader(master) as reader:
        local.write_stream("copy", 0, reader, master.size, cut_short_after_the_first_chunk)
    message = str(failed.value)
    assert "\n" not in message
    assert f"ended at byte {cut}, before {64 * MIB}" in message and "big/vol0.raw" in message
    assert not [path for path in (tmp_path / "pool").rglob("*") if path.is_file()]
