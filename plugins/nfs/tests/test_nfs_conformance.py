"""The nfs pool passes the core's storage driver conformance suite, three ways: through libnfs
over NFSv3 and over NFSv4 against nfs-ganesha, and on a mounted export (any directory stands in
for the mount: the kernel here cannot mount NFS)."""

from __future__ import annotations

import pytest
from encompass_nfs import plugin
from nfs_testing import make_driver

from encompass_core.testing import PeerDownSuite, StorageDriverSuite


class Record:
    @pytest.fixture
    def record(self):
        return next(plugin.NfsPlugin().encompass_storage_drivers())


class TestNfsV3Conformance(Record, StorageDriverSuite, PeerDownSuite):
    @pytest.fixture
    def driver(self, server, tmp_path):
        driver = make_driver(tmp_path, url=server.url)
        yield driver
        driver.close()

    @pytest.fixture
    def down_driver(self, tmp_path):
        return make_driver(tmp_path, url="nfs://127.0.0.1/export?nfsport=1&mountport=1")


class TestNfsV4Conformance(Record, StorageDriverSuite):
    @pytest.fixture
    def driver(self, server, tmp_path):
        driver = make_driver(tmp_path, url=server.url + "?version=4")
        yield driver
        driver.close()


class TestMountedExportConformance(Record, StorageDriverSuite):
    @pytest.fixture
    def driver(self, tmp_path):
        (tmp_path / "mnt").mkdir()
        driver = make_driver(tmp_path, path=str(tmp_path / "mnt"), url="nfs://nas.example/export")
        yield driver
        driver.close()
