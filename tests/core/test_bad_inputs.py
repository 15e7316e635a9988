"""Bad inputs: each is one line on stderr saying what is wrong, a non-zero exit, no traceback."""

from __future__ import annotations

import os
import subprocess

import pytest
from conftest import assert_one_line_error, image_records, make_qcow2_master, qemu_io


def test_an_unknown_master(run_cli) -> None:
    result = run_cli("clone", "nosuch", "web01")
    assert result.code == 3
    assert_one_line_error(result, "no image named 'nosuch'", "encompass image list")


def test_a_duplicate_name(run_cli, master, raw_disk) -> None:
    assert run_cli("clone", master, "web01").code == 0

    again = run_cli("clone", master, "web01")
    assert again.code == 4
    assert_one_line_error(again, "web01", "taken already")

    reimported = run_cli("master", "import", master, raw_disk)
    assert reimported.code == 4
    assert_one_line_error(reimported, "'base' exists already")
    assert sorted(image_records(run_cli)) == [master, "web01"]


@pytest.mark.parametrize("name", ["Web_01", "web.01", "web01-", "a" * 64])
def test_an_invalid_name(run_cli, master, name) -> None:
    result = run_cli("clone", master, name)
    assert result.code == 2
    assert_one_line_error(result, f"invalid clone name {name!r}", "e.g. 'web01'")
    assert sorted(image_records(run_cli)) == [master]


def test_a_missing_file_to_import(run_cli, tmp_path) -> None:
    missing = tmp_path / "nowhere.qcow2"
    result = run_cli("master", "import", "base", missing)
    assert result.code == 3
    assert_one_line_error(result, str(missing))
    assert image_records(run_cli) == {}


def test_a_half_written_qcow2_is_refused_before_anything_is_recorded(run_cli, tmp_path, pool_dir) -> None:
    disk = make_qcow2_master(tmp_path / "half.qcow2")
    qemu_io(disk, "write -P 0x11 8M 8M")
    os.truncate(disk, disk.stat().st_size // 2)  # as a copy cut short would leave it

    result = run_cli("master", "import", "base", disk)

    assert result.code == 2
    assert_one_line_error(result, str(disk), "not a usable qcow2 image")
    assert image_records(run_cli) == {}
    assert not (pool_dir / "base").exists()


def test_a_qcow2_overlay_is_refused_as_a_master(run_cli, tmp_path, qcow2_disk) -> None:
    overlay = tmp_path / "overlay.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(qcow2_disk),
                    str(overlay)], check=True)
    result = run_cli("master", "import", "base", overlay)
    assert result.code == 2
    assert_one_line_error(result, "overlay of", "qemu-img convert")


def write_config(home, text: str) -> None:
    (home / "encompass.toml").write_text(text)


def test_a_malformed_config_names_its_file_and_line(run_cli, encompass_home) -> None:
    write_config(encompass_home, '[defaults]\npool = "local"\n\n[pools.local\ndriver = "local"\n')
    result = run_cli("pool", "list")
    assert result.code == 5
    assert_one_line_error(result, str(encompass_home / "encompass.toml"), "line 4")


def test_a_secret_written_in_the_config_is_refused(run_cli, encompass_home, raw_disk) -> None:
    write_config(encompass_home, '[pools.local]\ndriver = "local"\npath = "pool"\npassword = "hunter2"\n')
    result = run_cli("master", "import", "base", raw_disk)
    assert result.code == 5
    assert_one_line_error(result, "[pools.local]", "'password'", "password_env", "password_file")
    assert "hunter2" not in result.err


def test_an_unknown_pool_driver(run_cli, encompass_home, raw_disk) -> None:
    write_config(encompass_home, '[pools.local]\ndriver = "nosuchdriver"\npath = "pool"\n')
    result = run_cli("master", "import", "base", raw_disk)
    assert result.code == 5
    assert_one_line_error(result, "pool 'local'", "driver 'nosuchdriver'", "drivers available: local")


def test_an_unknown_pool(run_cli, master) -> None:
    result = run_cli("clone", master, "web01", "--pool", "fast")
    assert result.code == 3
    assert_one_line_error(result, "no pool named 'fast'", "[pools.fast]")
