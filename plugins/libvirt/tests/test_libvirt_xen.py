"""The xen platform on libvirt's test driver loaded with a Xen host (tests/data/xen-host.xml).

The test driver keeps its state per connection, so these tests drive one platform driver
object through the contract, as the core's operations do. The kernel of the PV guest is
really read out of the demo master's disk; every domain XML validates against libvirt's schema.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from encompass_libvirt.domxml import XEN_MODES, xen_domain_xml
from encompass_libvirt.driver import LibvirtPlatformDriver
from libvirt_testing import DATA

from encompass_core.config import Config, Section
from encompass_core.contracts import Attachment
from encompass_core.errors import Conflict
from encompass_core.model import HardwareProfile, Image, Machine, SoftwareProfile, Volume

HOST_URI = f"test://{DATA / 'xen-host.xml'}"


def validate(xml: str, where: Path) -> None:
    if not (shutil.which("virt-xml-validate") and shutil.which("xmllint")):
        pytest.skip("virt-xml-validate needs libvirt-clients and libxml2-utils")
    where.write_text(xml)
    done = subprocess.run(["virt-xml-validate", str(where), "domain"], capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture
def xen(tmp_path: Path) -> LibvirtPlatformDriver:
    section = Section("xen", "xen", {"uri": HOST_URI, "shutdown_timeout": 0,
                                     "network": "bridge:xenbr0"})
    config = Config(path=tmp_path / "encompass.toml", defaults={}, pools={},
                    platforms={"xen": section})
    driver = LibvirtPlatformDriver(section, config, flavour="xen")
    yield driver
    driver.close()


def demo_image(name: str, master, mode: str, direct_kernel: bool) -> Image:
    software = SoftwareProfile(extra={"kernel": "/boot/vmlinuz", "initrd": "/boot/initrd.img",
                                      "cmdline": "console=hvc0 root=LABEL=encompass-root rw",
                                      "boot_partition": master.root_partition}
                               if direct_kernel else {})
    return Image(name=name, kind="clone", state="deploying",
                 volumes=(Volume(0, "local", "raw", str(master.disk), readonly=True),),
                 hardware=HardwareProfile(memory_mib=256, extra={"xen_mode": mode}),
                 software=software)


def test_discovery_finds_the_hosts_guests_and_resources(xen):
    found = {m.name: m for m in xen.discover()}
    legacy = found["legacy-pv"]
    assert legacy.uuid == "6f1e8a52-2b1c-4c57-9c55-3b7e0a9d1e01"
    assert legacy.power == "on"
    assert (legacy.hardware.memory_mib, legacy.hardware.cpus) == (1024, 2)
    assert legacy.macs == ("00:16:3e:12:34:56",)
    assert legacy.disks == ("/srv/xen/legacy-pv.img",)
    assert legacy.extra["driver"] == "xen" and legacy.extra["xen_mode"] == "pv"
    assert legacy.extra["host"]["memory_mib"] == 32768 and legacy.extra["host"]["cpus"] == 16


@pytest.mark.parametrize(("mode", "direct_kernel"), [("pv", True), ("pv", False), ("hvm", False),
                                                    ("pvh", True), ("pvh", False)])
def test_define_start_stop_a_xen_domain(xen, demo_master, tmp_path, mode, direct_kernel):
    image = demo_image(f"{mode}-guest", demo_master, mode, direct_kernel)
    created = xen.create_machine(image.name, image)
    assert created.power == "off" and created.disks == ()
    validate(xen._domain(created).XMLDesc(0), tmp_path / "shell.xml")

    attachment = Attachment(index=0, kind="file", address=str(demo_master.disk), format="raw",
                            readonly=True)
    running = xen.deploy(created, image, [attachment])
    assert running.power == "on" and running.disks == (str(demo_master.disk),)
    assert running.extra["xen_mode"] == mode
    xml = xen._domain(running).XMLDesc(0)
    validate(xml, tmp_path / "deployed.xml")
    if direct_kernel:
        kernel = xen._machine_dir(image.name) / "vmlinuz"
        assert kernel.read_bytes() == demo_master.kernel.read_bytes()
        assert f"<kernel>{kernel}</kernel>" in xml
    elif mode == "pv":
        assert "<bootloader>pygrub</bootloader>" in xml
    if mode == "hvm":
        assert xen.console_log(running) == xen._machine_dir(image.name) / "console.log"
    else:
        assert xen.console_log(running) == Path(f"/var/log/xen/console/guest-{image.name}.log")

    # The machine is now running an image: deploying again is refused by the driver too.
    with pytest.raises(Conflict, match="it is running"):
        xen.deploy(running, image, [attachment])

    assert xen.power(running, "off").power == "off"
    assert xen.power(running, "on").power == "on"
    stopped = xen.undeploy(running, image)
    assert stopped.power == "off" and stopped.disks == ()
    validate(xen._domain(stopped).XMLDesc(0), tmp_path / "undeployed.xml")

    xen.destroy_machine(stopped)
    assert image.name not in [m.name for m in xen.discover()]


def test_a_domain_name_clash_is_refused(xen, demo_master):
    image = demo_image("legacy-pv", demo_master, "pv", False)
    with pytest.raises(Conflict, match="has a domain named 'legacy-pv' already"):
        xen.create_machine("legacy-pv", image)


@pytest.mark.parametrize("mode", XEN_MODES)
def test_generated_xen_xml_validates(mode, tmp_path):
    kernel = {"kernel": "/boot/vmlinuz", "initrd": "/boot/initrd.img", "cmdline": "root=/dev/xvda"}
    for direct in (True, False):
        xml = xen_domain_xml("guest", 512, 2, [("/srv/a.qcow2", "qcow2"), ("/srv/b.raw", "raw")],
                             tmp_path / "console.log", mode=mode, **(kernel if direct else {}),
                             interfaces=['<interface type="bridge"><source bridge="xenbr0"/>'
                                         '</interface>'])
        validate(xml, tmp_path / f"{mode}-{direct}.xml")


def test_an_unknown_machine_is_not_found(xen):
    from encompass_core.errors import NotFound

    with pytest.raises(NotFound, match="no such domain"):
        xen.power(Machine(name="ghost", platform="xen"), "on")
