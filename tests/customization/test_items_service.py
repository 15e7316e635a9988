"""The ``service`` item on real Debian layouts: the links systemctl / update-rc.d would make.

Unit files and init scripts come from the openssh-server, rsync and systemd packages. The
systemd result is compared link for link with what ``systemctl --root=DIR enable/mask`` makes
on a copy, and read back with ``systemctl --root=DIR is-enabled``; a revert must give back the
parent's tree exactly (every path, kind, mode, owner, bytes and link).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from item_layouts import is_enabled, links, systemctl, systemd_guest, sysv_guest, tree_state

from encompass_core.customization.access import VolumeRef
from encompass_core.customization.items import build_item
from encompass_core.customization.itemtypes.service import ServiceCustomizer
from encompass_core.customization.openers.dirtree import DirTreeOpener
from encompass_core.errors import Conflict, InvalidInput, NotFound

ITEM = build_item({"key": "services", "type": "service", "path": "/"})
UNITS = ("ssh.service", "sshd.service", "systemd-networkd.service", "getty@tty1.service",
         "getty@tty2.service", "rsync.service")


def apply(root: Path, value: str, item=ITEM) -> None:
    ServiceCustomizer().validate(item)
    with DirTreeOpener().open(VolumeRef(str(root), "dir"), True) as fs:
        ServiceCustomizer().apply(fs, item, value, "web01")


def revert(root: Path, parent: Path | None, item=ITEM) -> None:
    with DirTreeOpener().open(VolumeRef(str(root), "dir"), True) as fs:
        if parent is None:
            ServiceCustomizer().revert(fs, item, None)
            return
        with DirTreeOpener().open(VolumeRef(str(parent), "dir"), False) as parent_fs:
            ServiceCustomizer().revert(fs, item, parent_fs)


@pytest.fixture(scope="module")
def systemd_master(tmp_path_factory) -> Path:
    return systemd_guest(tmp_path_factory.mktemp("systemd") / "master")


def copy(master: Path, tmp_path: Path, name: str) -> Path:
    target = tmp_path / name
    shutil.copytree(master, target, symlinks=True)
    return target


def test_systemd_links_are_those_systemctl_makes(systemd_master, tmp_path):
    clone = copy(systemd_master, tmp_path, "clone")
    reference = copy(systemd_master, tmp_path, "reference")
    apply(clone, "ssh:on, systemd-networkd:on getty@:on,getty@tty2,rsync:mask")
    for args in (("enable", "ssh.service", "systemd-networkd.service", "getty@.service",
                  "getty@tty2.service"), ("mask", "rsync.service")):
        done = systemctl(reference, *args)
        assert done.returncode == 0, done.stderr
    ours = {k: v for k, v in links(clone).items() if k.startswith("etc/")}
    assert ours == {k: v for k, v in links(reference).items() if k.startswith("etc/")}
    assert ours["etc/systemd/system/sshd.service"] == "/lib/systemd/system/ssh.service"
    assert is_enabled(clone, *UNITS) == ["enabled", "alias", "enabled", "enabled", "enabled", "masked"]

    apply(clone, "ssh:on,systemd-networkd:on,getty@:on,getty@tty2,rsync:mask")  # idempotent
    assert {k: v for k, v in links(clone).items() if k.startswith("etc/")} == ours

    revert(clone, systemd_master)
    assert tree_state(clone) == tree_state(systemd_master)
    assert is_enabled(clone, "ssh", "rsync") == ["disabled", "disabled"]


def test_systemd_off_and_unmask_revert_exactly_without_a_parent(systemd_master, tmp_path):
    """A clone whose parent had ssh enabled and rsync masked: off and on, then back."""
    parent = copy(systemd_master, tmp_path, "parent")
    assert systemctl(parent, "enable", "ssh.service", "systemd-networkd.service").returncode == 0
    assert systemctl(parent, "mask", "rsync.service").returncode == 0
    clone = copy(parent, tmp_path, "clone")
    apply(clone, "ssh:off,systemd-networkd:off,rsync:on")
    assert is_enabled(clone, "ssh", "systemd-networkd", "rsync") == ["disabled", "disabled", "enabled"]
    assert not (clone / "etc/systemd/system/sshd.service").is_symlink()
    revert(clone, None)  # no parent: the item's own record puts the links back
    assert tree_state(clone) == tree_state(parent)


def test_bad_values_change_nothing(systemd_master, tmp_path):
    clone = copy(systemd_master, tmp_path, "clone")
    before = tree_state(clone)
    for value, error, message in (
        ("ssh:on,nosuch:on", NotFound, "no systemd unit nosuch.service"),
        ("ssh:maybe", InvalidInput, "is not NAME"),
        ("ssh\\\\x:on", InvalidInput, "is not NAME"),
        ("ssh,ssh:off", InvalidInput, "given twice"),
        ("getty@:on,serial-getty@:on", InvalidInput, "template without DefaultInstance"),
        ("systemd-journald:on", InvalidInput, "no \\[Install\\] section"),
        ("", InvalidInput, "no service given"),
    ):
        with pytest.raises(error, match=message):
            apply(clone, value)
        assert tree_state(clone) == before
    (clone / "etc/systemd/system/rsync.service").write_text("[Unit]\n")  # a local unit, not a link
    with pytest.raises(Conflict, match="not a link"):
        apply(clone, "rsync:mask")


def test_sysv_links_follow_the_lsb_header(tmp_path):
    master = sysv_guest(tmp_path / "master")
    clone = copy(master, tmp_path, "clone")
    apply(clone, "ssh:off,rsync:on")
    found = {k: v for k, v in links(clone).items() if k.startswith("etc/rc")}
    # rsync: Default-Start 2 3 4 5, no Default-Stop; ssh kept its number, now K links.
    assert found == {**{f"etc/rc{n}.d/S01rsync": "../init.d/rsync" for n in "2345"},
                     **{f"etc/rc{n}.d/K01ssh": "../init.d/ssh" for n in "2345"}}
    with pytest.raises(InvalidInput, match="'mask' is for systemd"):
        apply(clone, "rsync:mask")
    revert(clone, master)
    assert tree_state(clone) == tree_state(master)


def test_openrc_runlevels(tmp_path):
    master = tmp_path / "master"
    (master / "etc/init.d").mkdir(parents=True)
    (master / "etc/runlevels/default").mkdir(parents=True)
    (master / "etc/runlevels/boot").mkdir()
    (master / "sbin").mkdir()
    (master / "sbin/openrc").write_text("")
    for name in ("sshd", "chronyd"):
        (master / "etc/init.d" / name).write_text("#!/sbin/openrc-run\n")
    (master / "etc/runlevels/boot/chronyd").symlink_to("/etc/init.d/chronyd")
    clone = copy(master, tmp_path, "clone")
    apply(clone, "sshd:on,chronyd:off")
    assert links(clone) == {"etc/runlevels/default/sshd": "/etc/init.d/sshd"}
    revert(clone, master)
    assert tree_state(clone) == tree_state(master)


def test_busybox_rcs_scripts(tmp_path):
    master = tmp_path / "master"
    (master / "etc/init.d").mkdir(parents=True)
    (master / "etc/init.d/rcS").write_text("#!/bin/sh\nfor s in /etc/init.d/S??*; do $s start; done\n")
    (master / "etc/init.d/hello").write_text("#!/bin/sh\necho hello\n")
    (master / "etc/init.d/crond").write_text("#!/bin/sh\n")
    (master / "etc/init.d/S20crond").symlink_to("crond")
    clone = copy(master, tmp_path, "clone")
    apply(clone, "hello:on,crond:off")
    assert links(clone) == {"etc/init.d/S50hello": "hello"}
    revert(clone, master)
    assert tree_state(clone) == tree_state(master)
