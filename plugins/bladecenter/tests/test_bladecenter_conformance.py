"""The bladecenter driver passes the core's platform conformance suite against the lab chassis:
a real snmpd whose blades are QEMU guests."""

from __future__ import annotations

import pytest
from bladecenter_testing import make_driver
from encompass_bladecenter.plugin import BladeCenterPlugin

from encompass_core.contracts import Attachment
from encompass_core.model import Image, Volume
from encompass_core.testing import PeerDownSuite, PlatformDriverSuite


class TestBladeCenterConformance(PlatformDriverSuite, PeerDownSuite):
    @pytest.fixture
    def record(self):
        return next(iter(BladeCenterPlugin().encompass_platform_drivers()))

    @pytest.fixture
    def machine(self, driver):
        blade = next(m for m in driver.discover() if m.extra["slot"] == 4)
        assert blade.power == "off"
        return blade

    @pytest.fixture
    def deployable(self, machine):
        # The SAN side is the pool's: here the boot LUN is mapped to the blade's initiator
        # already (the blade powers on and finds no disk on this chassis: no tgtd behind it).
        initiator = next(p.address for p in machine.host_ports if p.kind == "iscsi")
        volume = Volume(index=0, pool="san", format="raw", location="lun-web01", size=64 << 20)
        image = Image(name="web01", kind="clone", state="ready", volumes=(volume,), master="demo")
        attachment = Attachment(index=0, kind="iscsi", boot=True, lun=0,
                                address="iscsi://127.0.0.1:3260/iqn.2026-12.org.test:web01/1",
                                details={"initiator": initiator})
        return image, [attachment]

    @pytest.fixture
    def down_driver(self, chassis):
        closed = make_driver(chassis, port=1, timeout=0.5, retries=0)
        yield closed
        closed.shutdown()
