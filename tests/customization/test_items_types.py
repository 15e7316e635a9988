"""The built-in item types on a directory-tree volume: apply, then revert from the parent."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from encompass_core.customization.access import VolumeRef
from encompass_core.customization.items import build_item
from encompass_core.customization.itemtypes.bootscript import BootscriptCustomizer
from encompass_core.customization.itemtypes.cloudinit import CloudInitCustomizer
from encompass_core.customization.itemtypes.delete import DeleteCustomizer
from encompass_core.customization.itemtypes.file import FileCustomizer
from encompass_core.customization.itemtypes.regexp import RegexpCustomizer
from encompass_core.customization.openers.dirtree import DirTreeOpener
from encompass_core.errors import NotFound


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def trees(tmp_path):
    """(parent, clone): two copies of a small guest tree, the clone to be customized."""
    parent = tmp_path / "parent"
    (parent / "etc").mkdir(parents=True)
    (parent / "etc" / "hosts").write_text("127.0.0.1 localhost\n127.0.1.1 master\n")
    (parent / "etc" / "machine-id").write_text("0123456789abcdef\n")
    clone = tmp_path / "clone"
    shutil.copytree(parent, clone)
    return parent, clone


def roundtrip(trees, customizer, spec, value="web01"):
    parent, clone = trees
    item = build_item(spec)
    customizer.validate(item)
    with DirTreeOpener().open(VolumeRef(str(clone), "dir"), True) as fs:
        customizer.apply(fs, item, value, "web01")
    applied = snapshot(clone)
    with DirTreeOpener().open(VolumeRef(str(clone), "dir"), True) as fs, \
            DirTreeOpener().open(VolumeRef(str(parent), "dir"), False) as parent_fs:
        customizer.revert(fs, item, parent_fs)
    assert snapshot(clone) == snapshot(parent)
    return applied


def test_file_with_template_and_mode(trees):
    applied = roundtrip(trees, FileCustomizer(), {"key": "motd", "type": "file", "path": "/etc/motd.d/x",
                        "params": {"template": "Welcome to {value} ({clone})\n", "mode": "0600"}})
    assert applied["etc/motd.d/x"] == b"Welcome to web01 (web01)\n"


def test_regexp_groups_and_optional(trees):
    applied = roundtrip(trees, RegexpCustomizer(), {"key": "hosts", "type": "regexp", "path": "/etc/hosts",
                        "params": {"pattern": r"^(127\.0\.1\.1)\s.*$", "replacement": r"\1 {value}"}},
                        value=r"a\1b")
    assert applied["etc/hosts"].splitlines()[1] == rb"127.0.1.1 a\1b"
    item = build_item({"key": "x", "type": "regexp", "path": "/etc/hosts", "params": {"pattern": "nomatch"}})
    with DirTreeOpener().open(VolumeRef(str(trees[1]), "dir"), True) as fs:
        with pytest.raises(NotFound, match="matches nothing"):
            RegexpCustomizer().apply(fs, item, "v", "web01")
        optional = build_item({"key": "x", "type": "regexp", "path": "/etc/nofile", "optional": True,
                               "params": {"pattern": "x"}})
        RegexpCustomizer().apply(fs, optional, "v", "web01")


def test_delete(trees):
    spec = {"key": "mid", "type": "delete", "path": "/etc/machine-id"}
    applied = roundtrip(trees, DeleteCustomizer(), spec, value="")
    assert "etc/machine-id" not in applied


def test_cloud_init_seed(trees):
    applied = roundtrip(trees, CloudInitCustomizer(), {"key": "seed", "type": "cloud-init",
                        "path": "/var/lib/cloud/seed/nocloud"}, value="#cloud-config\npackages: [htop]")
    seed = "var/lib/cloud/seed/nocloud"
    assert applied[f"{seed}/user-data"] == b"#cloud-config\npackages: [htop]\n"
    assert b"local-hostname: web01\n" in applied[f"{seed}/meta-data"]
    assert applied[f"{seed}/meta-data"].startswith(b"instance-id: web01-")


BOOT = {"key": "first", "type": "bootscript", "path": "/usr/local/sbin/encompass-first"}


def test_bootscript_systemd(trees):
    for root in trees:
        (root / "etc" / "systemd" / "system").mkdir(parents=True)
        (root / "lib" / "systemd").mkdir(parents=True)
        (root / "lib" / "systemd" / "systemd").write_text("")
    applied = roundtrip(trees, BootscriptCustomizer(), BOOT, value="echo hi")
    assert applied["usr/local/sbin/encompass-first"] == b"#!/bin/sh\necho hi\n"
    assert b"ConditionPathExists=/usr/local/sbin/encompass-first" in applied[
        "etc/systemd/system/encompass-first.service"]


def test_bootscript_busybox_inittab(trees):
    for root in trees:
        (root / "etc" / "inittab").write_text("::sysinit:/etc/init.d/rcS\n")
    applied = roundtrip(trees, BootscriptCustomizer(), BOOT, value="echo hi")
    assert applied["etc/inittab"].splitlines()[1].startswith(b"::once:/bin/sh -c 'if [ -x ")


def test_bootscript_sysv_inittab(trees):
    for root in trees:
        (root / "etc" / "inittab").write_text("id:2:initdefault:\n")
    applied = roundtrip(trees, BootscriptCustomizer(), BOOT, value="echo hi")
    assert b":2345:once:" in applied["etc/inittab"].splitlines()[1]


def test_bootscript_rc_local(trees):
    applied = roundtrip(trees, BootscriptCustomizer(), BOOT, value="echo hi")
    lines = applied["etc/rc.local"].splitlines()
    assert lines[0] == b"#!/bin/sh" and lines[-1] == b"exit 0"
    assert lines[-2].endswith(b"# encompass:first")
