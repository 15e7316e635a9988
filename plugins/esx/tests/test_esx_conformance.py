"""The esx pool and platform pass the core's conformance suites, against vcsim.

The platform's image is a full clone (``CopyVirtualDisk_Task``) of a master uploaded into an
esx pool, attached as that pool attaches it: a VMDK path on LocalDS_0.
"""

from __future__ import annotations

import pytest
from encompass_esx import plugin
from vcsim_testing import platform_driver, pool_driver

from encompass_core.contracts import AttachRequest, CloneProgress
from encompass_core.model import HardwareProfile, Image, Machine
from encompass_core.records import CloneRequest
from encompass_core.testing import (
    PeerDownSuite,
    PlatformDriverSuite,
    StorageDriverSuite,
    make_source_image,
)

CLOSED_PORT = 1  # nothing listens there


class TestEsxPoolConformance(StorageDriverSuite, PeerDownSuite):
    @pytest.fixture
    def driver(self, pool):
        return pool

    @pytest.fixture
    def record(self):
        return next(plugin.EsxPlugin().encompass_storage_drivers())

    @pytest.fixture
    def down_driver(self, vcsim, tmp_path):
        return pool_driver(tmp_path, vcsim.settings(port=CLOSED_PORT, datastore="LocalDS_0"))


class TestEsxPlatformConformance(PlatformDriverSuite, PeerDownSuite):
    @pytest.fixture
    def driver(self, platform):
        return platform

    @pytest.fixture
    def record(self):
        return next(plugin.EsxPlugin().encompass_platform_drivers())

    @pytest.fixture
    def deployable(self, pool, driver, tmp_path):
        master = pool.import_volume("conformance-master", 0, make_source_image(tmp_path / "m.raw"))
        volume = pool.clone_volume(master, pool, CloneRequest("web01", 0, "full", 8, "conformance-master"),
                                   CloneProgress())
        image = Image(name="web01", kind="clone", state="deploying", master="conformance-master",
                      parent="conformance-master", volumes=(volume,),
                      hardware=HardwareProfile(memory_mib=256, cpus=1))
        machine = Machine(name="conformance-vm", platform=driver.platform)
        request = AttachRequest(kinds=driver.capabilities.attach_kinds, boot=True, lun=0)
        return image, [pool.attach(volume, machine, request)]

    @pytest.fixture
    def down_driver(self, vcsim, tmp_path):
        return platform_driver(tmp_path, vcsim.settings(port=CLOSED_PORT))
