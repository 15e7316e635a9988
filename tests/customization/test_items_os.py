"""A new user's path with the service, network and kernel items, through the real ``encompass``:
a Debian-shaped master (systemd units from packages, ifupdown, GRUB, two kernels) on raw,
qcow2 and directory-tree volumes; a clone gets a static IP, one service enabled and one
masked, the older kernel; each read back with the guest's own tools, then reverted exactly.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from item_layouts import (
    KERNELS,
    ROOT_UUID,
    boot_tree,
    extract,
    grubenv,
    is_enabled,
    systemd_guest,
    tree_state,
)

from conftest import volume_path
from encompass_core.demo.packages import fetch_packages
from encompass_core.testing import demo

INTERFACES = "auto lo\niface lo inet loopback\n\nallow-hotplug eth0\niface eth0 inet dhcp\n"
STATIC = "192.0.2.10/24,gateway=192.0.2.1,dns=192.0.2.2"


@pytest.fixture(scope="module")
def guest(tmp_path_factory) -> Path:
    root = systemd_guest(tmp_path_factory.mktemp("guest") / "root")
    (root / "etc/network").mkdir(parents=True, exist_ok=True)
    (root / "etc/network/interfaces").write_text(INTERFACES)
    return boot_tree(root, fetch_packages(demo.test_cache() / "packages")[0])


def master_volume(kind: str, guest: Path, tmp_path: Path) -> Path:
    if kind == "dir":
        return guest
    raw = tmp_path / "disk.raw"
    subprocess.run(["mke2fs", "-q", "-t", "ext4", "-d", str(guest), str(raw), "96M"], check=True)
    if kind == "raw":
        return raw
    qcow2 = tmp_path / "disk.qcow2"
    subprocess.run(["qemu-img", "convert", "-O", "qcow2", str(raw), str(qcow2)], check=True)
    return qcow2


def tree_of(run_cli, name: str, kind: str, target: Path) -> Path:
    location = volume_path(run_cli, name)
    return location if kind == "dir" else extract(location, target)


@pytest.mark.tinydb_only  # the item types' work: the repository's backend plays no part
@pytest.mark.parametrize("kind", ["raw", "qcow2", "dir"])
def test_static_ip_services_and_kernel_read_back_and_reverted(kind, run_cli, guest, tmp_path):
    assert run_cli("master", "import", "base", master_volume(kind, guest, tmp_path)).code == 0
    for args in (("services", "--type", "service", "--path", "/"),
                 ("net", "--type", "network", "--path", "/", "--param", "interface=eth0"),
                 ("kernel", "--type", "kernel", "--path", "/boot")):
        added = run_cli("master", "items", "add", "base", *args)
        assert added.code == 0, added.err
    assert run_cli("clone", "base", "web01", "--mode", "full" if kind == "raw" else "cow").code == 0
    done = run_cli("customize", "web01", "--set", "services=ssh:on,rsync:mask", "--set", f"net={STATIC}",
                   "--set", f"kernel={KERNELS[0]}", timeout=600)
    assert done.code == 0, done.err

    tree = tree_of(run_cli, "web01", kind, tmp_path / "customized")
    assert is_enabled(tree, "ssh", "sshd", "rsync") == ["enabled", "alias", "masked"]
    query = subprocess.run(["ifquery", "-i", str(tree / "etc/network/interfaces"), "eth0"],
                           capture_output=True, text=True, check=True).stdout
    assert "address: 192.0.2.10\n" in query and "gateway: 192.0.2.1\n" in query
    assert grubenv(tree)["saved_entry"].endswith(f">gnulinux-{KERNELS[0]}-advanced-{ROOT_UUID}")
    assert (tree / "vmlinuz").readlink() == Path(f"boot/vmlinuz-{KERNELS[0]}")

    bad = run_cli("customize", "web01", "--set", "net=192.0.2.10/24,gateway=10.0.0.1")
    assert bad.code == 2 and "Traceback" not in bad.err, bad.err
    # Checked before any clone is touched: one line, no clone named (none was started).
    assert bad.err.strip() == ("encompass: item 'net': gateway 10.0.0.1 is not in the network "
                               "192.0.2.0/24 of the address"), bad.err
    shown = run_cli("image", "show", "web01", "--json").json()
    assert shown["state"] == "ready" and shown["inputs"]["net"] == STATIC  # nothing was changed

    done = run_cli("uncustomize", "web01", timeout=600)
    assert done.code == 0, done.err
    reverted = tree_of(run_cli, "web01", kind, tmp_path / "reverted")
    master = tree_of(run_cli, "base", kind, tmp_path / "master")
    assert tree_state(reverted) == tree_state(master)
    assert is_enabled(reverted, "ssh", "rsync") == ["disabled", "disabled"]
