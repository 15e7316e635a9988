"""The redfish platform passes the core's conformance suite against sushy-emulator's fake driver.

Its servers are physical: the suite gets one of the emulator's systems, powered off, and an
image whose boot volume a SAN pool mapped to it (what a deploy on a Redfish server is given).
"""

from __future__ import annotations

import pytest
from encompass_redfish import plugin
from redfish_testing import make_driver

from encompass_core.contracts import Attachment
from encompass_core.model import Image, SoftwareProfile, Volume
from encompass_core.testing import PeerDownSuite, PlatformDriverSuite


class TestRedfishConformance(PlatformDriverSuite, PeerDownSuite):
    @pytest.fixture
    def driver(self, fake_driver):
        return fake_driver

    @pytest.fixture
    def record(self):
        return next(plugin.encompass_platform_drivers())

    @pytest.fixture
    def machine(self, driver):
        server = next(m for m in driver.discover() if m.name == "rack1-srv1")
        return driver.power(server, "off")

    @pytest.fixture
    def deployable(self):
        volume = Volume(index=0, pool="san", format="raw", location="web01.0", size=8 << 20)
        image = Image(name="web01", kind="clone", state="deploying", master="base", parent="base",
                      volumes=(volume,), software=SoftwareProfile(extra={"boot_mode": "san"}))
        boot = Attachment(index=0, kind="iscsi", boot=True, lun=0,
                          address="iscsi://127.0.0.1:3260/iqn.2026-12.org.encompass:san.rack1-srv1/1")
        return image, [boot]

    @pytest.fixture
    def down_driver(self, tmp_path, password_file):
        return make_driver(tmp_path, {"address": "http://127.0.0.1:1", "username": "admin",
                                      "password_file": str(password_file)})
