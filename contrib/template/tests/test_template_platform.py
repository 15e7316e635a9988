"""The platform driver passes the core's conformance suite against the fake controller.

Its machines are physical: the suite is given one of them, powered off (``machine``), and an
image with the attachments a SAN pool would give (``deployable``). To test against your real
controller, make ``chassis`` start (or reach) it; the suite stays as it is.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from encompass_template import plugin
from encompass_template.fake_chassis import FakeChassis
from encompass_template.platform import TemplatePlatformDriver

from encompass_core.config import Config, Section
from encompass_core.contracts import Attachment
from encompass_core.model import Image, Volume
from encompass_core.plugins import PluginHost
from encompass_core.testing import PeerDownSuite, PlatformDriverSuite

MACHINES = ["blade1", "blade2"]


def make_driver(folder: Path, address: str) -> TemplatePlatformDriver:
    section = Section("template-chassis", "template", {"address": address})
    config = Config(path=folder / "encompass.toml", defaults={}, pools={},
                    platforms={section.name: section})
    return TemplatePlatformDriver(section, config)


@pytest.fixture
def chassis(tmp_path: Path) -> FakeChassis:
    return FakeChassis.create(str(tmp_path / "chassis"), MACHINES)


class TestTemplatePlatformConformance(PlatformDriverSuite, PeerDownSuite):
    @pytest.fixture
    def driver(self, tmp_path, chassis):
        driver = make_driver(tmp_path, chassis.address)
        yield driver
        driver.shutdown()

    @pytest.fixture
    def record(self):
        return next(plugin.encompass_platform_drivers())

    @pytest.fixture
    def machine(self, driver):
        return next(m for m in driver.discover() if m.name == MACHINES[0])

    @pytest.fixture
    def deployable(self):
        volume = Volume(index=0, pool="san", format="raw", location="web01.0", size=8 << 20)
        image = Image(name="web01", kind="clone", state="deploying", master="base", parent="base",
                      volumes=(volume,))
        boot = Attachment(index=0, kind="iscsi", boot=True, lun=0,
                          address="iscsi://127.0.0.1:3260/iqn.2024-01.example:san/web01.0")
        return image, [boot]

    @pytest.fixture
    def down_driver(self, tmp_path):
        return make_driver(tmp_path, str(tmp_path / "no-controller-here"))


def test_discovery_tells_each_machine_by_uuid_serial_and_mac(tmp_path, chassis):
    found = {m.name: m for m in make_driver(tmp_path, chassis.address).discover()}
    assert sorted(found) == MACHINES
    assert len({m.uuid for m in found.values()}) == 2
    assert found["blade1"].extra["serial"] == "FAKE0001" and found["blade1"].macs
    assert found["blade1"].kind == "physical" and found["blade1"].power == "off"


def test_a_deploy_boots_the_san_volume_once(tmp_path, chassis):
    driver = make_driver(tmp_path, chassis.address)
    machine = driver.discover()[0]
    driver.set_boot_device(machine, "pxe", once=True)
    assert chassis.machines()[machine.name]["boot_once"] == "pxe"
    driver.power(machine, "on")
    assert chassis.machines()[machine.name]["boot_once"] is None  # used by that boot


def test_the_plugin_host_finds_the_platform_driver():
    host = PluginHost().load(allow="none-of-them")
    host.register(plugin, name="under-test")
    try:
        assert host.platform_drivers()["template"].factory is TemplatePlatformDriver
    finally:
        host.unregister("under-test")
