"""The amt platform passes the core's conformance suite against the lab's AMT PCs.

The image to deploy is a raw volume of a local pool exported over iSCSI by a private tgtd,
attached as the pool attaches it: a LUN of a target bound to the PC's boot initiator. The PCs
here are power states only (the boot itself is proven by test_amt_boot).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from amt_testing import USER, platform_driver, settings
from encompass_amt import plugin
from encompass_amt.lab.responder import AmtLab, AmtPc

from encompass_core.config import Config, Section
from encompass_core.contracts import AttachRequest
from encompass_core.drivers.local import LocalStorageDriver
from encompass_core.model import Image, Machine, Volume
from encompass_core.testing import PeerDownSuite, PlatformDriverSuite
from encompass_core.testing.tgt import running_tgtd


@pytest.fixture(scope="module")
def tgtd(tmp_path_factory):
    with running_tgtd(tmp_path_factory.mktemp("tgtd")) as daemon:
        yield daemon


def exported_pool(folder: Path, tgtd) -> LocalStorageDriver:
    section = Section("lab", "local", {"path": str(folder), "export": "iscsi",
                                       "tgt_control": tgtd.control, "iscsi_portal": tgtd.portal})
    return LocalStorageDriver(section, Config(path=folder / "encompass.toml", defaults={},
                                              pools={"lab": section}, platforms={}))


class TestAmtConformance(PlatformDriverSuite, PeerDownSuite):
    @pytest.fixture
    def driver(self, tmp_path, amt_password):
        with AmtLab([AmtPc("pc1"), AmtPc("pc2")], USER, amt_password) as lab:
            driver = platform_driver(tmp_path, settings(lab))
            yield driver
            driver.shutdown()

    @pytest.fixture
    def record(self):
        return next(plugin.AmtPlugin().encompass_platform_drivers())

    @pytest.fixture
    def machine(self, driver) -> Machine:
        return next(machine for machine in driver.discover() if machine.name == "pc1")

    @pytest.fixture
    def deployable(self, driver, machine, tgtd, tmp_path):
        pool = exported_pool(tmp_path / "pool", tgtd)
        disk = tmp_path / "pool" / "web01" / "vol0.raw"
        disk.parent.mkdir(parents=True)
        with open(disk, "wb") as handle:
            handle.truncate(16 << 20)
        volume = Volume(index=0, pool="lab", format="raw", location=str(disk), size=16 << 20)
        image = Image(name="web01", kind="clone", state="deploying", master="demo", parent="demo",
                      volumes=(volume,))
        attachment = pool.attach(volume, machine, AttachRequest(kinds=("iscsi",), boot=True, lun=0))
        yield image, [attachment]
        pool.detach(volume, machine)

    @pytest.fixture
    def down_driver(self, tmp_path):
        return platform_driver(tmp_path, settings(addresses=["127.0.0.1:1"]))
