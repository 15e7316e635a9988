"""Full clones from one export to another (no server-side copy between them): the source pool
reads through libnfs (``open_reader``), the target pool writes through libnfs or into its mount
(``write_stream``), with no FUSE view of the ``nfs://`` file between them. The same bytes, holes
kept, progress shown; a server that stops mid-copy leaves one line and nothing behind.

The second export is a folder of the first mounted on its own (``nfs://HOST/export/far``):
another export as far as the pools can tell. Each clone runs with a ``qemu-storage-daemon`` on
PATH that refuses to start: the stream does not need it (the path through ``expose`` would)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from nfs_testing import encompass_cli, stop_mid_clone

MIB = 1 << 20
DATA = bytes(range(256)) * (MIB // 256)  # a MiB with no zero block in it


def sparse_disk(path: Path, size_mib: int, data_mib: list[tuple[int, int]]) -> Path:
    with open(path, "wb") as disk:
        disk.truncate(size_mib * MIB)
        for start, length in data_mib:
            disk.seek(start * MIB)
            disk.write(DATA * length)
    return path


@pytest.fixture
def encompass(server, tmp_path):
    """The CLI with pools ``nas`` (the export), ``far`` (its folder far/, mounted on its own)
    and ``kept`` (an export this host has mounted: here a folder), and a qemu-storage-daemon
    that refuses to run."""
    (server.export_dir / "far").mkdir()
    refusing = tmp_path / "bin" / "qemu-storage-daemon"
    refusing.parent.mkdir()
    refusing.write_text("#!/bin/sh\necho 'qemu-storage-daemon: not for this copy' >&2\nexit 1\n")
    refusing.chmod(0o755)
    (tmp_path / "kept").mkdir()
    return encompass_cli(tmp_path / "home",
                         f'\n[pools.nas]\ndriver = "nfs"\nurl = "{server.url}"\n'
                         f'\n[pools.far]\ndriver = "nfs"\nurl = "{server.url}/far"\n'
                         f'\n[pools.kept]\ndriver = "nfs"\npath = "{tmp_path / "kept"}"\n',
                         {"PATH": f"{refusing.parent}:{os.environ['PATH']}"})


def location(encompass, name: str) -> str:
    return json.loads(encompass("image", "show", name, "--json").stdout)["volumes"][0]["location"]


def test_a_volume_streams_from_one_export_to_another_whole_sparse_and_with_progress(server, encompass,
                                                                                   tmp_path):
    source = sparse_disk(tmp_path / "base.raw", 64, [(0, 4), (30, 8), (63, 1)])
    encompass("master", "import", "base", str(source), "--pool", "nas")

    done = encompass("clone", "base", "web01", "--pool", "far", "--mode", "full")

    assert location(encompass, "web01") == f"{server.url}/far/web01/vol0.raw"
    made = server.export_dir / "far" / "web01" / "vol0.raw"
    assert subprocess.run(["cmp", str(source), str(made)]).returncode == 0
    assert made.stat().st_size == 64 * MIB and made.stat().st_blocks * 512 <= 14 * MIB  # holes kept
    assert re.search(r"web01: 64\.0 MiB of 64\.0 MiB \(100%\)", done.stderr), done.stderr
    assert "streamed 64.0 MiB from pool 'nas'" in encompass("image", "history", "web01").stdout
    assert sorted(p.name for p in (server.export_dir / "far" / "web01").iterdir()) == ["vol0.raw"]


def test_a_volume_streams_into_a_mounted_export_too(server, encompass, tmp_path):
    source = sparse_disk(tmp_path / "base.raw", 16, [(0, 2), (15, 1)])
    encompass("master", "import", "base", str(source), "--pool", "nas")

    encompass("clone", "base", "web01", "--pool", "kept", "--mode", "full")

    made = Path(location(encompass, "web01"))
    assert made == tmp_path / "kept" / "web01" / "vol0.raw"
    assert made.read_bytes() == source.read_bytes()


def test_a_server_stopped_mid_stream_is_one_line_and_leaves_nothing_on_the_target(server, encompass,
                                                                                 tmp_path):
    encompass("master", "import", "big", str(sparse_disk(tmp_path / "big.raw", 512, [(0, 512)])),
              "--pool", "nas")
    rest = stop_mid_clone(server, encompass.env, "big", "web01", "far", "512.0 MiB")
    failure = [line for line in rest.splitlines() if line.strip().startswith("web01:")
               and " of " not in line]
    assert len(failure) == 1 and "stopped answering" in failure[0], rest
    assert "Traceback" not in rest
    server.start()
    assert '"error"' in encompass("image", "show", "web01", "--json").stdout
    # Both sides were on the stopped server: the half-written file could not be removed then;
    # deleting the failed clone removes it.
    encompass("image", "delete", "web01")
    assert [p for p in (server.export_dir / "far").rglob("*") if p.is_file()] == []
