"""Volume openers take settings from ``[openers.NAME]`` tables of encompass.toml."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from conftest import assert_one_line_error, volume_path


def guest_tree(root):
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "hostname").write_bytes(b"master\n")
    return root


def mount_count(image) -> int:
    header = subprocess.run(["dumpe2fs", "-h", str(image)], capture_output=True, text=True,
                            check=True).stdout
    return int(re.search(r"^Mount count:\s+(\d+)", header, re.MULTILINE).group(1))


@pytest.fixture
def raw_clone(run_cli, tmp_path) -> str:
    raw = tmp_path / "disk.raw"
    subprocess.run(["mke2fs", "-q", "-t", "ext4", "-d", str(guest_tree(tmp_path / "tree")), str(raw), "32M"],
                   check=True)
    assert run_cli("master", "import", "base", raw).code == 0
    assert run_cli("master", "items", "add", "base", "hostname", "--type", "file",
                   "--path", "/etc/hostname", "--default", "master").code == 0
    assert run_cli("clone", "base", "web01", "--mode", "full").code == 0
    return "web01"


def configure(encompass_home, text: str) -> None:
    with open(encompass_home / "encompass.toml", "a") as config:
        config.write(text)


def test_an_unknown_opener_setting_is_a_clear_error(run_cli, encompass_home, raw_clone):
    configure(encompass_home, "\n[openers.loop]\nallow_loop_mont = true\n")
    result = run_cli("image", "cat", raw_clone, "/etc/hostname")
    assert result.code == 5
    assert_one_line_error(result, "[openers.loop]", "allow_loop_mont")


@pytest.mark.skipif(os.geteuid() != 0, reason="loop mounts need root")
def test_loop_mounts_are_used_only_when_allowed(run_cli, encompass_home, raw_clone):
    disk = volume_path(run_cli, raw_clone)
    before = mount_count(disk)
    assert run_cli("customize", raw_clone, "--set", "hostname=web01").code == 0
    assert mount_count(disk) == before  # debugfs: never mounted

    configure(encompass_home, "\n[openers.loop]\nallow_loop_mount = true\n")
    assert run_cli("customize", raw_clone, "--set", "hostname=web02").code == 0
    assert mount_count(disk) == before + 1  # the kernel mounted it once, through a loop device
    assert run_cli("image", "cat", raw_clone, "/etc/hostname").out == "web02\n"
