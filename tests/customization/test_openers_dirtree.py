"""Directory-tree volumes: reading, writing, and never leaving the tree."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from encompass_core.customization.access import VolumeRef
from encompass_core.customization.openers import dirtree
from encompass_core.customization.openers.dirtree import DirTreeOpener
from encompass_core.errors import ConfinementError, InvalidInput, NotFound

HOST_SECRET = b"host secret\n"


@pytest.fixture
def host_dir(tmp_path: Path) -> Path:
    """A directory of the utility server that no volume may touch."""
    host = tmp_path / "host"
    host.mkdir()
    (host / "secret").write_bytes(HOST_SECRET)
    return host


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A small guest file tree."""
    root = tmp_path / "guest"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "hostname").write_bytes(b"master\n")
    os.chmod(root / "etc" / "hostname", 0o640)
    return root


def open_tree(root: Path, writable: bool = True):
    return DirTreeOpener().open(VolumeRef(str(root), "dir"), writable)


def assert_host_untouched(host_dir: Path) -> None:
    assert sorted(os.listdir(host_dir)) == ["secret"]
    assert (host_dir / "secret").read_bytes() == HOST_SECRET


def test_write_then_read_back_with_mode_and_owner(tree: Path) -> None:
    with open_tree(tree) as fs:
        fs.write("/etc/motd", b"welcome\n", mode=0o600, uid=123, gid=456)
        assert fs.read("/etc/motd") == b"welcome\n"
        assert fs.stat("/etc/motd").mode == 0o600
    st = os.stat(tree / "etc" / "motd")
    assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o600, 123, 456)
    assert sorted(os.listdir(tree / "etc")) == ["hostname", "motd"]  # no temp file left


def test_replacing_keeps_mode_and_owner(tree: Path) -> None:
    os.chown(tree / "etc" / "hostname", 7, 8)
    with open_tree(tree) as fs:
        fs.write("/etc/hostname", b"web01\n")
    st = os.stat(tree / "etc" / "hostname")
    assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o640, 7, 8)
    assert (tree / "etc" / "hostname").read_bytes() == b"web01\n"


def test_listdir_stat_mkdir_remove(tree: Path) -> None:
    with open_tree(tree) as fs:
        fs.mkdir("/var/lib/app", parents=True)
        fs.write("/var/lib/app/state", b"1")
        assert fs.listdir("/") == ["etc", "var"]
        assert fs.listdir("/var/lib/app") == ["state"]
        assert fs.stat("/var/lib").kind == "dir"
        fs.remove("/var/lib/app/state")
        assert not fs.exists("/var/lib/app/state")
        with pytest.raises(NotFound):
            fs.read("/var/lib/app/state")
        with pytest.raises(InvalidInput):
            fs.remove("/var")


def test_read_only_access_refuses_writes(tree: Path) -> None:
    with open_tree(tree, writable=False) as fs:
        assert fs.read("/etc/hostname") == b"master\n"
        with pytest.raises(InvalidInput, match="read-only"):
            fs.write("/etc/hostname", b"x")
    with pytest.raises(InvalidInput, match="closed"):
        fs.read("/etc/hostname")


@pytest.mark.parametrize("path", ["/../host/secret", "/etc/../../host/secret", "/..", "etc"])
def test_paths_climbing_out_are_refused(tree: Path, host_dir: Path, path: str) -> None:
    with open_tree(tree) as fs, pytest.raises((ConfinementError, InvalidInput)):
        fs.write(path, b"owned")
    assert_host_untouched(host_dir)


def test_absolute_symlink_is_resolved_inside_the_tree(tree: Path, host_dir: Path) -> None:
    # /data -> <host_dir> (absolute): the guest would look at <tree>/<host_dir>, so do we.
    (tree / "data").symlink_to(host_dir)
    with open_tree(tree) as fs:
        with pytest.raises(NotFound):
            fs.read("/data/secret")
        with pytest.raises(NotFound):
            fs.write("/data/secret", b"owned")
        mirrored = tree / str(host_dir).lstrip("/")
        mirrored.mkdir(parents=True)
        fs.write("/data/secret", b"inside")
        assert (mirrored / "secret").read_bytes() == b"inside"
        assert fs.read("/data/secret") == b"inside"
    assert_host_untouched(host_dir)


def test_root_link_trick_stays_in_the_tree(tree: Path, host_dir: Path) -> None:
    # The classic /etc -> / : writing /etc/etc/hostname must mean the tree's /etc/hostname.
    (tree / "root").symlink_to("/")
    with open_tree(tree) as fs:
        fs.write("/root/etc/hostname", b"web01\n")
        assert fs.listdir("/root") == ["etc", "root"]
    assert (tree / "etc" / "hostname").read_bytes() == b"web01\n"


def test_relative_symlink_climbing_out_clamps_at_the_root(tree: Path, host_dir: Path) -> None:
    (tree / "etc" / "up").symlink_to("../../../../../../../.." + str(host_dir))
    with open_tree(tree) as fs:
        with pytest.raises(NotFound):
            fs.write("/etc/up/secret", b"owned")
        (tree / str(host_dir).lstrip("/")).mkdir(parents=True)
        fs.write("/etc/up/secret", b"inside")
        assert fs.stat("/etc/up").target.startswith("../")
    assert (tree / str(host_dir).lstrip("/") / "secret").read_bytes() == b"inside"
    assert_host_untouched(host_dir)


def test_dangling_final_symlink_to_host_is_created_inside(tree: Path, host_dir: Path) -> None:
    (tree / "etc" / "hostname").unlink()
    (tree / "etc" / "hostname").symlink_to(host_dir / "secret")
    (tree / str(host_dir).lstrip("/")).mkdir(parents=True)
    with open_tree(tree) as fs:
        assert fs.exists("/etc/hostname")
        assert fs.stat("/etc/hostname").kind == "symlink"
        fs.write("/etc/hostname", b"web01\n")
        assert fs.read("/etc/hostname") == b"web01\n"
    assert (tree / str(host_dir).lstrip("/") / "secret").read_bytes() == b"web01\n"
    assert_host_untouched(host_dir)


def test_symlink_loop_is_refused(tree: Path) -> None:
    (tree / "a").symlink_to("b")
    (tree / "b").symlink_to("a")
    with open_tree(tree) as fs, pytest.raises(InvalidInput, match="symbolic links"):
        fs.read("/a")


def test_parent_swapped_for_a_host_symlink_midway_is_refused(
    tree: Path, host_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A race: /etc becomes a symlink to the host after it was looked up, before it is entered."""
    real_lookup = dirtree.FdNamespace.lookup

    def lookup_then_swap(self, directory, name):
        entry = real_lookup(self, directory, name)
        if name == "etc":
            os.rename(tree / "etc", tree / "etc.old")
            (tree / "etc").symlink_to(host_dir)
        return entry

    monkeypatch.setattr(dirtree.FdNamespace, "lookup", lookup_then_swap)
    with open_tree(tree) as fs, pytest.raises(ConfinementError, match="changed"):
        fs.write("/etc/secret", b"owned")
    assert_host_untouched(host_dir)
