"""The ``kernel`` item: GRUB's default (grubenv or grub.cfg), extlinux's DEFAULT and Debian's
vmlinuz links point at the chosen kernel; read back with ``grub-editenv list``; reverted exactly.

/boot holds the files of Debian's cloud kernel package (the demo's cached one), installed
under two versions as an upgrade leaves them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from item_layouts import KERNELS, ROOT_UUID, boot_tree, grubenv, tree_state

from encompass_core.customization.access import VolumeRef
from encompass_core.customization.items import build_item, is_hardware_dependent
from encompass_core.customization.itemtypes.kernel import KernelCustomizer
from encompass_core.customization.openers.dirtree import DirTreeOpener
from encompass_core.demo.packages import fetch_packages
from encompass_core.errors import InvalidInput, NotFound
from encompass_core.testing import demo

ITEM = build_item({"key": "kernel", "type": "kernel", "path": "/boot"})
OLD = KERNELS[0]


@pytest.fixture(scope="module")
def kernel_deb() -> Path:
    return fetch_packages(demo.test_cache() / "packages")[0]


def apply(root: Path, value: str, item=ITEM) -> None:
    KernelCustomizer().validate(item)
    with DirTreeOpener().open(VolumeRef(str(root), "dir"), True) as fs:
        KernelCustomizer().apply(fs, item, value, "web01")


def revert(root: Path, parent: Path) -> None:
    with DirTreeOpener().open(VolumeRef(str(root), "dir"), True) as fs, \
            DirTreeOpener().open(VolumeRef(str(parent), "dir"), False) as parent_fs:
        KernelCustomizer().revert(fs, ITEM, parent_fs)


@pytest.mark.parametrize("saved", [True, False], ids=["grubenv", "grub-cfg"])
def test_boot_an_older_kernel_then_revert(tmp_path, kernel_deb, saved):
    master = boot_tree(tmp_path / "master", kernel_deb, saved=saved)
    clone = tmp_path / "clone"
    shutil.copytree(master, clone, symlinks=True)
    apply(clone, OLD)
    wanted = f"gnulinux-advanced-{ROOT_UUID}>gnulinux-{OLD}-advanced-{ROOT_UUID}"
    cfg = (clone / "boot/grub/grub.cfg").read_text()
    if saved:
        assert grubenv(clone) == {"saved_entry": wanted}
        assert len((clone / "boot/grub/grubenv").read_bytes()) == 1024
        assert cfg == (master / "boot/grub/grub.cfg").read_text()
    else:
        assert f'   set default="{wanted}"\n' in cfg and 'set default="${next_entry}"' in cfg
        assert grubenv(clone) == {}
    extlinux = (clone / "boot/extlinux/extlinux.conf").read_text()
    assert extlinux.splitlines()[:2] == ["DEFAULT l0", "TIMEOUT 50"]
    assert (clone / "vmlinuz").readlink() == Path(f"boot/vmlinuz-{OLD}")
    assert (clone / "initrd.img").resolve().read_bytes() == f"initramfs of {OLD}\n".encode()
    apply(clone, OLD)  # idempotent
    assert grubenv(clone) == ({"saved_entry": wanted} if saved else {})
    revert(clone, master)
    assert tree_state(clone) == tree_state(master)


def test_unknown_kernel_and_missing_entry(tmp_path, kernel_deb):
    master = boot_tree(tmp_path / "master", kernel_deb)
    before = tree_state(master)
    with pytest.raises(NotFound, match=f"no kernel '5.10.0-1-amd64' in /boot \\(installed: {OLD}, "):
        apply(master, "5.10.0-1-amd64")
    with pytest.raises(NotFound, match="no kernel"):
        apply(master, "../../etc/passwd")
    (master / "boot/vmlinuz-6.2.0-1-amd64").write_bytes(b"")  # installed, but update-grub not run
    with pytest.raises(NotFound, match="grub.cfg has no entry for vmlinuz-6.2.0-1-amd64; run update-grub"):
        apply(master, "6.2.0-1-amd64")
    (master / "boot/vmlinuz-6.2.0-1-amd64").unlink()
    assert tree_state(master) == before  # nothing was written


def test_kernel_is_hardware_dependent_by_default():
    assert is_hardware_dependent(ITEM)
    assert not is_hardware_dependent(build_item({"key": "k", "type": "kernel", "path": "/boot",
                                                 "params": {"on": "image"}}))
    assert is_hardware_dependent(build_item({"key": "f", "type": "file", "path": "/etc/modules",
                                             "params": {"on": "hardware"}}))
    assert not is_hardware_dependent(build_item({"key": "f", "type": "file", "path": "/etc/x"}))
    with pytest.raises(InvalidInput, match="on='sometimes' is not one of hardware, image"):
        KernelCustomizer().validate(build_item({"key": "k", "type": "kernel", "path": "/boot",
                                                "params": {"on": "sometimes"}}))
