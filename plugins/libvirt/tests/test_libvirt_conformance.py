"""The kvm and xen platforms pass the core's platform driver conformance suite.

kvm runs against the session's private libvirt daemon and QEMU (software emulation): a deploy
boots the demo guest's kernel, and the suite checks the domain runs, not its console. xen runs
against libvirt's test driver loaded with a Xen host, which defines and starts domains without
booting them. The image's volume is a full clone of the demo master in a local pool, attached
as the local pool attaches it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from encompass_libvirt import plugin
from encompass_libvirt.driver import LibvirtPlatformDriver
from libvirt_testing import DATA

from encompass_core.config import Config, Section
from encompass_core.contracts import AttachRequest, CloneProgress
from encompass_core.drivers.local import LocalStorageDriver
from encompass_core.model import HardwareProfile, Image, Machine, SoftwareProfile
from encompass_core.records import CloneRequest
from encompass_core.testing import PeerDownSuite, PlatformDriverSuite

XEN_HOST_URI = f"test://{DATA / 'xen-host.xml'}"
NO_SOCKET = "socket=/nonexistent/libvirt-sock"


def make_driver(folder: Path, flavour: str, settings: dict) -> LibvirtPlatformDriver:
    section = Section(flavour, flavour, settings)
    config = Config(path=folder / "encompass.toml", defaults={}, pools={},
                    platforms={flavour: section})
    return LibvirtPlatformDriver(section, config, flavour=flavour)


def clone_of_demo(folder: Path, demo_master, platform: LibvirtPlatformDriver, cmdline: str):
    """The demo master imported into a local pool, a full clone of it, and that clone attached
    for ``platform``'s machines: the image and its attachments, as a deploy gets them."""
    section = Section("local", "local", {"path": str(folder / "pool")})
    pool = LocalStorageDriver(section, Config(path=folder / "encompass.toml", defaults={},
                                              pools={"local": section}, platforms={}))
    master = pool.import_volume("demo", 0, demo_master.disk)
    volume = pool.clone_volume(master, pool, CloneRequest("web01", 0, "full", 8, "demo"),
                               CloneProgress())
    image = Image(name="web01", kind="clone", state="deploying", master="demo", parent="demo",
                  volumes=(volume,), hardware=HardwareProfile(memory_mib=256, extra={"xen_mode": "pv"}),
                  software=SoftwareProfile(extra={"kernel": "/boot/vmlinuz",
                                                  "initrd": "/boot/initrd.img", "cmdline": cmdline,
                                                  "boot_partition": demo_master.root_partition}))
    machine = Machine(name="conformance-vm", platform=platform.platform)
    request = AttachRequest(kinds=platform.capabilities.attach_kinds, boot=True, lun=0)
    return image, [pool.attach(volume, machine, request)]


class TestKvmConformance(PlatformDriverSuite, PeerDownSuite):
    @pytest.fixture
    def folder(self, base_dir: Path) -> Path:
        # Under the session's base directory: the daemon's user (nobody) reaches the files.
        path = Path(tempfile.mkdtemp(prefix="conformance-", dir=base_dir))
        path.chmod(0o755)
        return path

    @pytest.fixture
    def driver(self, folder, daemon):
        driver = make_driver(folder, "kvm", {"uri": "private", "private_dir": str(daemon.dirs.base),
                                             "domain_type": "qemu", "shutdown_timeout": 0})
        yield driver
        driver.close()

    @pytest.fixture
    def record(self):
        return next(plugin.KvmPlugin().encompass_platform_drivers())

    @pytest.fixture
    def deployable(self, folder, demo_master, driver):
        return clone_of_demo(folder, demo_master, driver, demo_master.cmdline)

    @pytest.fixture
    def down_driver(self, tmp_path):
        return make_driver(tmp_path, "kvm", {"uri": f"qemu+unix:///session?{NO_SOCKET}"})


class TestXenConformance(PlatformDriverSuite, PeerDownSuite):
    @pytest.fixture
    def driver(self, tmp_path):
        driver = make_driver(tmp_path, "xen", {"uri": XEN_HOST_URI, "shutdown_timeout": 0,
                                               "network": "bridge:xenbr0"})
        yield driver
        driver.close()

    @pytest.fixture
    def record(self):
        return next(plugin.XenPlugin().encompass_platform_drivers())

    @pytest.fixture
    def deployable(self, tmp_path, demo_master, driver):
        return clone_of_demo(tmp_path, demo_master, driver, "console=hvc0 root=LABEL=encompass-root rw")

    @pytest.fixture
    def down_driver(self, tmp_path):
        return make_driver(tmp_path, "xen", {"uri": f"xen+unix:///system?{NO_SOCKET}"})
