"""Set a clone's hostname, read it back, un-set it: raw, qcow2 and directory-tree images.

Each scenario goes through the real ``encompass`` command: import a master holding a small
guest tree, give the master items (hostname file, /etc/hosts regexp, boot script), clone,
customize, read back with ``image cat``, un-customize, and check that the master's bytes of
those files are back and that the ext4 filesystem is clean.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import volume_path

HOSTS = b"127.0.0.1\tlocalhost\n127.0.1.1\tmaster\n::1\tlocalhost ip6-localhost\n"
SCRIPT = "echo first boot of {clone} > /var/log/firstboot\n"


def guest_tree(root: Path) -> Path:
    """A tiny systemd-looking guest."""
    (root / "etc" / "systemd" / "system").mkdir(parents=True)
    (root / "lib" / "systemd").mkdir(parents=True)
    (root / "lib" / "systemd" / "systemd").write_bytes(b"\x7fELF")
    (root / "etc" / "hostname").write_bytes(b"master\n")
    (root / "etc" / "hosts").write_bytes(HOSTS)
    return root


def make_master(kind: str, tmp_path: Path) -> Path:
    tree = guest_tree(tmp_path / "tree")
    if kind == "dir":
        return tree
    raw = tmp_path / "disk.raw"
    subprocess.run(["mke2fs", "-q", "-t", "ext4", "-d", str(tree), str(raw), "64M"], check=True)
    if kind == "raw":
        return raw
    qcow2 = tmp_path / "disk.qcow2"
    subprocess.run(["qemu-img", "convert", "-O", "qcow2", str(raw), str(qcow2)], check=True)
    return qcow2


def add_items(run_cli, master: str) -> None:
    for args in (
        ("hostname", "--type", "file", "--path", "/etc/hostname", "--prompt", "Host name",
         "--default", "master"),
        ("hosts", "--type", "regexp", "--path", "/etc/hosts",
         "--param", r"pattern=^127\.0\.1\.1\s.*$", "--param", r"replacement=127.0.1.1\t{value}"),
        ("firstboot", "--type", "bootscript", "--path", "/usr/local/sbin/encompass-firstboot"),
    ):
        result = run_cli("master", "items", "add", master, *args)
        assert result.code == 0, result.err


def cat(run_cli, image: str, path: str) -> str:
    result = run_cli("image", "cat", image, path)
    assert result.code == 0, result.err
    return result.out


def fsck_clean(path: Path, tmp_path: Path) -> None:
    raw = path
    if path.suffix == ".qcow2":
        raw = tmp_path / "check.raw"
        subprocess.run(["qemu-img", "convert", "-U", "-O", "raw", str(path), str(raw)], check=True)
    done = subprocess.run(["e2fsck", "-fn", str(raw)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("kind", ["raw", "qcow2", "dir"])
def test_hostname_set_read_back_and_unset(kind, run_cli, tmp_path):
    assert run_cli("master", "import", "base", make_master(kind, tmp_path)).code == 0
    add_items(run_cli, "base")
    mode = "full" if kind == "raw" else "cow"  # a full clone of a raw master stays raw
    assert run_cli("clone", "base", "web01", "--mode", mode).code == 0
    script = tmp_path / "script.sh"
    script.write_text(SCRIPT)

    result = run_cli("customize", "web01", "--set", "hostname={clone}", "--set", "hosts={clone}",
                     "--set-file", f"firstboot={script}")
    assert result.code == 0, result.err
    assert cat(run_cli, "web01", "/etc/hostname") == "web01\n"
    assert cat(run_cli, "web01", "/etc/hosts").splitlines()[1] == "127.0.1.1\tweb01"
    assert cat(run_cli, "web01", "/usr/local/sbin/encompass-firstboot") == (
        "#!/bin/sh\necho first boot of web01 > /var/log/firstboot\n")
    unit = cat(run_cli, "web01", "/etc/systemd/system/encompass-firstboot.service")
    assert "ExecStart=/usr/local/sbin/encompass-firstboot" in unit
    assert "Wants=encompass-firstboot.service" in cat(
        run_cli, "web01", "/etc/systemd/system/multi-user.target.d/encompass-firstboot.conf")
    assert cat(run_cli, "base", "/etc/hostname") == "master\n"  # the master is untouched
    if kind != "dir":
        fsck_clean(volume_path(run_cli, "web01"), tmp_path)

    shown = run_cli("image", "show", "web01")
    assert "item hostname" in shown.out and "applied" in shown.out

    again = run_cli("customize", "web01")  # stored inputs: nothing changes
    assert again.code == 0, again.err
    assert "nothing to change" in again.err

    changed = run_cli("customize", "web01", "--set", "hosts=web01.example.org")
    assert changed.code == 0, changed.err  # reverted, then applied: the pattern matches again
    assert cat(run_cli, "web01", "/etc/hosts").splitlines()[1] == "127.0.1.1\tweb01.example.org"

    result = run_cli("uncustomize", "web01")
    assert result.code == 0, result.err
    assert cat(run_cli, "web01", "/etc/hostname") == "master\n"
    assert cat(run_cli, "web01", "/etc/hosts").encode() == HOSTS
    listing = run_cli("image", "ls", "web01", "/etc/systemd/system", "--json")
    assert [e["name"] for e in listing.json() if e["kind"] == "file"] == []
    assert "not applied" in run_cli("image", "show", "web01").out
    if kind != "dir":
        fsck_clean(volume_path(run_cli, "web01"), tmp_path)


def test_uncustomize_one_item_and_clone_of_clone(run_cli, tmp_path):
    assert run_cli("master", "import", "base", make_master("qcow2", tmp_path)).code == 0
    add_items(run_cli, "base")
    assert run_cli("clone", "base", "web01").code == 0
    assert run_cli("customize", "web01", "--set", "hostname=web01", "--set", "hosts=web01",
                   "--set", "firstboot=true").code == 0
    # A full clone of a customized clone inherits what was applied, and reverts to the master.
    assert run_cli("clone", "web01", "web01b", "--mode", "full").code == 0
    assert cat(run_cli, "web01b", "/etc/hostname") == "web01\n"
    result = run_cli("uncustomize", "web01b", "--item", "hostname")
    assert result.code == 0, result.err
    assert cat(run_cli, "web01b", "/etc/hostname") == "master\n"
    assert cat(run_cli, "web01b", "/etc/hosts").splitlines()[1] == "127.0.1.1\tweb01"


def test_a_clone_others_read_through_is_not_customized(run_cli, tmp_path):
    assert run_cli("master", "import", "base", make_master("qcow2", tmp_path)).code == 0
    add_items(run_cli, "base")
    assert run_cli("clone", "base", "web01").code == 0
    assert run_cli("clone", "web01", "web01b").code == 0
    result = run_cli("customize", "web01", "--set", "hostname=x", "--set", "hosts=x",
                     "--set", "firstboot=true")
    assert result.code != 0
    assert "read through it (web01b)" in result.err


def test_masters_are_never_customized(run_cli, tmp_path):
    assert run_cli("master", "import", "base", make_master("dir", tmp_path)).code == 0
    add_items(run_cli, "base")
    result = run_cli("customize", "base", "--set", "hostname=x")
    assert result.code != 0 and "masters are never customized" in result.err


def test_two_items_on_one_file_revert_one_at_a_time(run_cli, tmp_path):
    assert run_cli("master", "import", "base", make_master("dir", tmp_path)).code == 0
    add_items(run_cli, "base")
    assert run_cli("master", "items", "add", "base", "localhost", "--type", "regexp", "--path",
                   "/etc/hosts", "--param", r"pattern=^127\.0\.0\.1\s.*$",
                   "--param", r"replacement=127.0.0.1\t{value}").code == 0
    assert run_cli("clone", "base", "web01").code == 0
    assert run_cli("customize", "web01", "--set", "hostname=web01", "--set", "hosts=web01",
                   "--set", "firstboot=true", "--set", "localhost=lo.example").code == 0
    assert cat(run_cli, "web01", "/etc/hosts").splitlines()[:2] == ["127.0.0.1\tlo.example",
                                                                    "127.0.1.1\tweb01"]
    assert run_cli("uncustomize", "web01", "--item", "hosts").code == 0
    assert cat(run_cli, "web01", "/etc/hosts").splitlines()[:2] == ["127.0.0.1\tlo.example",
                                                                    "127.0.1.1\tmaster"]
    # Un-customized, 'hosts' lost its input; a new value for 'localhost' keeps 'hosts' applied.
    assert run_cli("customize", "web01", "--set", "localhost=lo2").code == 2
    assert run_cli("customize", "web01", "--set", "hosts=web01").code == 0
    assert run_cli("customize", "web01", "--set", "localhost=lo2").code == 0
    assert cat(run_cli, "web01", "/etc/hosts").splitlines()[:2] == ["127.0.0.1\tlo2", "127.0.1.1\tweb01"]


def test_partitioned_raw_disk(run_cli, tmp_path):
    tree = guest_tree(tmp_path / "tree")
    disk = tmp_path / "disk.raw"
    subprocess.run(["truncate", "-s", "65M", str(disk)], check=True)
    subprocess.run(["sfdisk", "-q", str(disk)], input="start=2048, type=83\n", text=True, check=True)
    subprocess.run(["mke2fs", "-q", "-t", "ext4", "-d", str(tree), "-E", "offset=1048576", str(disk), "63M"],
                   check=True)
    assert run_cli("master", "import", "base", disk).code == 0
    assert run_cli("master", "items", "add", "base", "hostname", "--type", "file", "--path", "/etc/hostname",
                   "--partition", "1").code == 0
    assert run_cli("clone", "base", "web01").code == 0
    assert run_cli("customize", "web01", "--set", "hostname={clone}").code == 0
    result = run_cli("image", "cat", "web01", "/etc/hostname", "--partition", "1")
    assert result.out == "web01\n", result.err
    assert run_cli("uncustomize", "web01").code == 0
    assert run_cli("image", "cat", "web01", "/etc/hostname", "--partition", "1").out == "master\n"
