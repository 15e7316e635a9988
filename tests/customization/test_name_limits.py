"""File names at and past the 255-byte limit: raw (ext4), qcow2 (ext4) and directory trees.

A 255-byte name is written and read back; a 256-byte one is refused before anything is
looked up or written, whether the item names it or a symlink in the image leads to it, and
the ext4 filesystem stays one that ``e2fsck -fn`` finds clean.
"""

from __future__ import annotations

import os

import pytest
from test_customize_roundtrip import fsck_clean, make_master

from conftest import assert_one_line_error, volume_path

LONGEST = "n" * 255
TOO_LONG = "x" * 256


def master_with_a_long_link(kind: str, tmp_path) -> os.PathLike:
    """The round-trip guest, plus /etc/far: a symlink to a 256-byte name (a hostile image)."""
    (tmp_path / "tree" / "etc").mkdir(parents=True)
    os.symlink(f"/etc/{TOO_LONG}", tmp_path / "tree" / "etc" / "far")
    return make_master(kind, tmp_path)


def make_clone(run_cli, kind: str, tmp_path) -> None:
    assert run_cli("master", "import", "base", master_with_a_long_link(kind, tmp_path)).code == 0
    result = run_cli("master", "items", "add", "base", "longest", "--type", "file",
                     "--path", f"/etc/{LONGEST}")
    assert result.code == 0, result.err
    mode = "full" if kind == "raw" else "cow"  # a full clone of a raw master stays raw
    assert run_cli("clone", "base", "web01", "--mode", mode).code == 0


@pytest.mark.parametrize("kind", ["raw", "qcow2", "dir"])
def test_a_255_byte_name_is_written_and_a_256_byte_one_refused(kind, run_cli, tmp_path):
    make_clone(run_cli, kind, tmp_path)

    # Refused when the item is defined: no volume could hold it.
    refused = run_cli("master", "items", "add", "base", "long", "--type", "file",
                      "--path", f"/etc/{TOO_LONG}")
    assert refused.code == 2
    assert_one_line_error(refused, "item 'long'", "256 bytes long", "at most 255")

    done = run_cli("customize", "web01", "--set", "longest=hello")
    assert done.code == 0, done.err
    assert run_cli("image", "cat", "web01", f"/etc/{LONGEST}").out == "hello\n"
    listing = run_cli("image", "ls", "web01", "/etc", "--json").json()
    assert LONGEST in [entry["name"] for entry in listing]
    assert not [entry["name"] for entry in listing if entry["name"].startswith(".")]  # no temp left

    # A symlink in the image leading to a 256-byte name: refused, with the input error's code.
    assert run_cli("master", "items", "add", "base", "far", "--type", "file", "--path", "/etc/far").code == 0
    through_link = run_cli("customize", "web01", "--set", "far=x")
    assert through_link.code == 2, through_link.err
    assert "Traceback" not in through_link.err
    assert "symlink /etc/far" in through_link.err and "at most 255" in through_link.err

    cat = run_cli("image", "cat", "web01", f"/etc/{TOO_LONG}")
    assert cat.code == 2
    assert_one_line_error(cat, "256 bytes long", "at most 255")
    assert run_cli("image", "cat", "web01", f"/etc/{LONGEST}").out == "hello\n"
    if kind != "dir":
        fsck_clean(volume_path(run_cli, "web01"), tmp_path)


def test_a_path_over_4095_bytes_is_refused(run_cli, tmp_path):
    make_clone(run_cli, "dir", tmp_path)
    path = "/" + "/".join(["d" * 200] * 21)  # every name legal, 4221 bytes in all
    result = run_cli("image", "cat", "web01", path)
    assert result.code == 2
    assert_one_line_error(result, "4221 bytes long", "at most 4095")
