"""The ds4xxx pool passes the core's storage driver conformance suite, on the SMcli simulator
whose logical drives are tgt iSCSI LUNs, read and written through QEMU's iSCSI driver."""

from __future__ import annotations

import pytest
from ds4xxx_testing import make_driver
from encompass_ds4xxx import plugin

from encompass_core.testing import PeerDownSuite, StorageDriverSuite


class TestDs4xxxConformance(StorageDriverSuite, PeerDownSuite):
    @pytest.fixture
    def record(self):
        return next(plugin.encompass_storage_drivers())

    @pytest.fixture
    def down_driver(self, tmp_path, simulator):
        return make_driver(tmp_path, reachable=False)
