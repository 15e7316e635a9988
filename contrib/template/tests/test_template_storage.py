"""The storage driver passes the core's conformance suite against the fake array.

To test against your real array, make the ``array`` fixture start (or reach) it and the
``down_driver`` point at an address where nothing answers; the suite stays as it is.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from encompass_template import plugin
from encompass_template.fake_array import FakeArray
from encompass_template.storage import TemplateStorageDriver

from encompass_core.config import Config, Section
from encompass_core.plugins import PluginHost
from encompass_core.testing import PeerDownSuite, StorageDriverSuite


def make_driver(folder: Path, address: str) -> TemplateStorageDriver:
    section = Section("template-pool", "template", {"array": address})
    config = Config(path=folder / "encompass.toml", defaults={}, pools={section.name: section},
                    platforms={})
    return TemplateStorageDriver(section, config)


@pytest.fixture
def array(tmp_path: Path) -> FakeArray:
    return FakeArray.create(str(tmp_path / "array"))


class TestTemplateStorageConformance(StorageDriverSuite, PeerDownSuite):
    @pytest.fixture
    def driver(self, tmp_path, array):
        driver = make_driver(tmp_path, array.address)
        yield driver
        driver.close()

    @pytest.fixture
    def record(self):
        return next(plugin.encompass_storage_drivers())

    @pytest.fixture
    def down_driver(self, tmp_path):
        return make_driver(tmp_path, str(tmp_path / "no-array-here"))


def test_the_plugin_host_finds_the_storage_driver():
    host = PluginHost().load(allow="none-of-them")
    host.register(plugin, name="under-test")
    try:
        record = host.storage_drivers()["template"]
        assert record.factory is TemplateStorageDriver
        assert [setting.name for setting in record.settings] == ["array"]
    finally:
        host.unregister("under-test")
