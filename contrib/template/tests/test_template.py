"""The template registers with the core's plugin host like any plugin."""

from encompass_template import plugin

from encompass_core.model import Event
from encompass_core.plugins import PluginHost


def test_observer_sees_events(caplog):
    host = PluginHost()
    host.pm.register(plugin, name="template")
    caplog.set_level("INFO")
    host.notify(Event(image="web01", kind="transition", message="m", from_state="ready", to_state="deployed"))
    assert "web01: ready -> deployed" in caplog.text
