"""The item type applies and reverts its change in a real volume (a directory tree)."""

from __future__ import annotations

from pathlib import Path

import pytest
from encompass_template import plugin
from encompass_template.customizer import TemplateCustomizer

from encompass_core.customization.access import VolumeRef
from encompass_core.customization.items import build_item
from encompass_core.customization.openers import open_volume
from encompass_core.errors import InvalidInput
from encompass_core.plugins import PluginHost


@pytest.fixture
def volume(tmp_path: Path) -> VolumeRef:
    """A clone's volume and its master's: two directory trees holding /etc/banner."""
    for name in ("master", "clone"):
        (tmp_path / name / "etc").mkdir(parents=True)
        (tmp_path / name / "etc" / "banner").write_text("welcome\n")
    return VolumeRef(path=str(tmp_path / "clone"), format="dir")


def item(**params: str):
    return build_item({"key": "banner", "type": "template", "path": "/etc/banner",
                       "params": params})


def test_apply_writes_the_value_and_revert_restores_the_master(volume, tmp_path):
    customizer = TemplateCustomizer()
    banner = item(prefix="Site:")
    customizer.validate(banner)
    with open_volume(volume, writable=True) as files:
        customizer.apply(files, banner, "Paris", "web01")
    assert (tmp_path / "clone" / "etc" / "banner").read_text() == "Site: Paris\n"

    master = VolumeRef(path=str(tmp_path / "master"), format="dir")
    with open_volume(volume, writable=True) as files, open_volume(master, writable=False) as parent:
        customizer.revert(files, banner, parent)
    assert (tmp_path / "clone" / "etc" / "banner").read_text() == "welcome\n"


def test_a_definition_that_cannot_work_is_refused():
    with pytest.raises(InvalidInput, match="colour"):
        TemplateCustomizer().validate(item(colour="red"))


def test_the_plugin_host_finds_the_item_type():
    host = PluginHost().load(allow="none-of-them")
    host.register(plugin, name="under-test")
    try:
        assert host.customizers()["template"].factory is TemplateCustomizer
    finally:
        host.unregister("under-test")
