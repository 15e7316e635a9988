"""The proof: a clone on a DS4xxx logical drive, customized by Encompass, deployed on a KVM
machine, boots through libvirt's iSCSI network disk, and its console shows its hostname.

The demo master (a whole disk SeaBIOS boots, root on partition 2) is imported onto the simulated
subsystem, cloned as a FlashCopy, customized through ``encompass customize`` (the LUN mapped to
the utility host and exported over FUSE), then ``encompass deploy --new``: the pool maps the
logical drive at LUN 0 to the new machine's host (made from the initiator name the VM is given),
the kvm platform defines the LUN as a network disk, and the guest's firmware boots what its own
initiator sees on the tgt portal.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from ds4xxx_testing import encompass, ok

from encompass_core.testing.demo import cached_demo_master

libvirt = pytest.importorskip("libvirt", reason="libvirt-python is not installed")
pytest.importorskip("encompass_libvirt", reason="the kvm platform (encompass-libvirt) is not installed")
from encompass_libvirt.daemon import PrivateDaemon, start_private_daemon  # noqa: E402

pytestmark = pytest.mark.slow
VM_INITIATOR = "iqn.2026-12.org.encompass:initiator.web01"
BOOT_TIMEOUT = 240.0


@pytest.fixture
def daemon() -> Iterator[PrivateDaemon]:
    if not shutil.which("libvirtd", path="/usr/sbin:/usr/bin:/sbin"):
        pytest.skip("no libvirt daemon installed (apt-get install libvirt-daemon "
                    "libvirt-daemon-driver-qemu qemu-system-x86)")
    base = Path(tempfile.mkdtemp(prefix="enc-ds4-", dir="/var/tmp"))  # short: socket paths
    base.chmod(0o755)
    try:
        with start_private_daemon(base / "libvirt") as running:
            yield running
    finally:
        shutil.rmtree(base, ignore_errors=True)


def wait_for_line(console: Path, text: str) -> str:
    """Poll the console log until it shows ``text``; what it shows."""
    deadline = time.monotonic() + BOOT_TIMEOUT
    shown = ""
    while time.monotonic() < deadline and text not in shown:
        shown = console.read_text(errors="replace") if console.exists() else ""
        time.sleep(0.2)
    return shown


def test_a_customized_clone_on_a_logical_drive_boots_over_iscsi(home, simulator, daemon):
    with open(home / "encompass.toml", "a", encoding="utf-8") as config:
        config.write(f'\n[platforms.kvm]\ndriver = "kvm"\nuri = "private"\n'
                     f'private_dir = "{daemon.dirs.base}"\ndomain_type = "qemu"\nshutdown_timeout = 0\n')
    master = cached_demo_master()
    ok(home, "master", "import", "demo", str(master.disk), "--hw", "memory=256M")
    ok(home, "master", "items", "add", "demo", "hostname", "--type", "file", "--path", "/etc/hostname",
       "--partition", str(master.root_partition), "--default", "master")
    ok(home, "clone", "demo", "web01")  # a FlashCopy logical drive
    ok(home, "customize", "web01", "--set", "hostname=web01-san")
    assert simulator.mappings() == {}

    deployed = encompass(home, "deploy", "web01", "--new", "--platform", "kvm")

    assert deployed.returncode == 0, deployed.stderr
    console = Path(re.search(r"console log: (\S+)", deployed.stdout + deployed.stderr).group(1))
    shown = wait_for_line(console, "encompass-demo: hostname web01-san")
    assert "encompass-demo: hostname web01-san" in shown, shown[-2000:]
    assert "SYSLINUX" in shown  # the firmware booted the LUN, no kernel was handed over
    state = simulator.state()
    assert simulator.mappings() == {"web01_0": ("web01", 0)}
    host = state["hosts"]["web01"]
    assert list(host["ports"]) == [VM_INITIATOR]
    with libvirt.open(daemon.uri) as connection:
        disk = ET.fromstring(connection.lookupByName("web01").XMLDesc(0)).find("devices/disk")
    source = disk.find("source")
    assert (disk.get("type"), source.get("protocol"), source.get("name")) == (
        "network", "iscsi", f"{host['target']}/1")  # SMcli's LUN 0, tgt's LUN 1
    assert source.find("initiator/iqn").get("name") == VM_INITIATOR

    ok(home, "undeploy", "web01", "--remove-machine")
    assert simulator.mappings() == {}
    assert "web01" not in simulator.state()["hosts"]  # the host made for the VM is gone too
    # The master's logical drive was never written: it still says "master".
    assert ok(home, "image", "cat", "demo", "/etc/hostname", "--partition",
              str(master.root_partition)) == "master\n"
