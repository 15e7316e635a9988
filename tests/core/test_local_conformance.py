"""The built-in ``local`` pool passes the storage driver conformance suite."""

from __future__ import annotations

from pathlib import Path

import pytest

from encompass_core.config import Config, Section
from encompass_core.drivers import builtin_storage, local
from encompass_core.testing import StorageDriverSuite


class TestLocalConformance(StorageDriverSuite):
    """A pool in a fresh folder; local has no peer, so no PeerDownSuite."""

    @pytest.fixture
    def driver(self, tmp_path: Path):
        section = Section("conformance", "local", {"path": str(tmp_path / "pool")})
        config = Config(path=tmp_path / "encompass.toml", defaults={}, pools={"conformance": section},
                        platforms={})
        driver = local.LocalStorageDriver(section, config)
        yield driver
        driver.close()

    @pytest.fixture
    def record(self):
        return next(builtin_storage.encompass_storage_drivers())
