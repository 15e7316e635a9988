"""The proof: a clone on a DS4xxx logical drive, customized by Encompass, boots in a libvirt/QEMU
guest through libvirt's iSCSI network disk, and its console shows its hostname.

The demo master (a whole disk SeaBIOS boots, root on partition 2) is imported onto the simulated
subsystem, cloned as a FlashCopy, customized through ``encompass customize`` (the LUN mapped to
the utility host and exported over FUSE), then attached to a machine by its initiator name: the
guest's firmware boots the LUN its own initiator sees on the tgt portal.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from ds4xxx_testing import make_driver, ok

from encompass_core.contracts import AttachRequest
from encompass_core.model import HostPort, Machine
from encompass_core.testing.demo import cached_demo_master

libvirt = pytest.importorskip("libvirt", reason="libvirt-python is not installed")
from encompass_libvirt.daemon import PrivateDaemon, start_private_daemon  # noqa: E402

pytestmark = pytest.mark.slow
VM_INITIATOR = "iqn.2024-01.org.encompass:vm-web01"
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


def domain_xml(name: str, attachment, console: Path) -> str:
    """A guest booting the iSCSI LUN by firmware, as a platform would define it."""
    details = attachment.details
    host, port = details["portal"].rsplit(":", 1)
    return f"""
<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64'>hvm</type><boot dev='hd'/></os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <devices>
    <disk type='network' device='disk'>
      <driver name='qemu' type='{attachment.format}'/>
      <source protocol='iscsi' name='{details["target"]}/{details["iscsi_lun"]}'>
        <host name='{host}' port='{port}'/>
        <initiator><iqn name='{details["initiator"]}'/></initiator>
      </source>
      <target dev='vda' bus='virtio'/>
    </disk>
    <serial type='file'><source path='{console}'/><target port='0'/></serial>
  </devices>
</domain>"""


def wait_for(console: Path, text: str, domain) -> str:
    deadline = time.monotonic() + BOOT_TIMEOUT
    shown = ""
    while time.monotonic() < deadline:
        shown = console.read_text(errors="replace") if console.exists() else ""
        if text in shown:
            return shown
        try:
            if not domain.isActive():
                break
        except libvirt.libvirtError:
            break  # a transient domain that powered off is gone
        time.sleep(0.5)
    return console.read_text(errors="replace") if console.exists() else shown


def test_a_customized_clone_on_a_logical_drive_boots_over_iscsi(home, simulator, daemon, tmp_path):
    master = cached_demo_master()
    ok(home, "master", "import", "demo", str(master.disk))
    ok(home, "master", "items", "add", "demo", "hostname", "--type", "file", "--path", "/etc/hostname",
       "--partition", str(master.root_partition), "--default", "master")
    ok(home, "clone", "demo", "web01")  # a FlashCopy logical drive
    ok(home, "customize", "web01", "--set", "hostname=web01-san")
    assert ok(home, "image", "cat", "web01", "/etc/hostname", "--partition",
              str(master.root_partition)) == "web01-san\n"
    assert simulator.mappings() == {}

    # Attach as a deploy does: the LUN mapped to the machine's host (made from its initiator
    # name) at LUN 0.
    pool = make_driver(home)
    volume = next(found.volume for found in pool.discover() if found.image == "web01")
    machine = Machine(name="web01-vm", platform="kvm", host_ports=(HostPort("iscsi", VM_INITIATOR),))
    attachment = pool.attach(volume, machine, AttachRequest(kinds=("iscsi",), boot=True, lun=0))
    assert simulator.mappings() == {"web01_0": ("web01-vm", 0)}

    console = daemon.dirs.guests / "web01.console"
    connection = libvirt.open(daemon.uri)
    try:
        domain = connection.createXML(domain_xml("web01-san", attachment, console), 0)
        shown = wait_for(console, "encompass-demo: hostname web01-san", domain)
    finally:
        for running in connection.listAllDomains():
            if running.isActive():
                running.destroy()
        connection.close()
    assert "SYSLINUX" in shown, shown[-2000:]
    assert "encompass-demo: hostname web01-san" in shown, shown[-2000:]

    pool.detach(volume, machine)
    assert simulator.mappings() == {}
    # The master's logical drive was never written: it still says "master".
    assert ok(home, "image", "cat", "demo", "/etc/hostname", "--partition",
              str(master.root_partition)) == "master\n"
