"""The plugin's registration: two entry points, two records, no libvirt import to list them."""

from __future__ import annotations

import subprocess
import sys

import pytest
from encompass_libvirt.driver import LibvirtPlatformDriver

from encompass_core.config import Config, Section
from encompass_core.errors import ConfigError
from encompass_core.plugins import PluginHost


def test_kvm_and_xen_register_one_platform_driver_each():
    host = PluginHost().load(allow="kvm,xen")
    assert host.infos["kvm"].status == "active", host.infos["kvm"].error
    assert host.infos["xen"].status == "active", host.infos["xen"].error
    assert host.infos["kvm"].distribution == "encompass-libvirt"
    drivers = host.platform_drivers()
    assert {"kvm", "xen"} <= set(drivers)
    assert host.provider("encompass_platform_drivers", "kvm") == "kvm"
    assert host.provider("encompass_platform_drivers", "xen") == "xen"


def test_listing_plugins_does_not_import_libvirt():
    code = ("import sys; from encompass_core.plugins import PluginHost; "
            "host = PluginHost().load(allow='kvm,xen'); host.platform_drivers(); "
            "assert 'libvirt' not in sys.modules, 'libvirt imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(("flavour", "settings", "message"), [
    ("xen", {"uri": "private"}, "needs the host's own"),
    ("kvm", {"domain_type": "hvm"}, "use auto, kvm or qemu"),
    ("kvm", {"shutdown_timeout": "soon"}, "number of seconds"),
])
def test_bad_settings_are_configuration_errors(tmp_path, flavour, settings, message):
    section = Section("p", flavour, settings)
    config = Config(path=tmp_path / "encompass.toml", defaults={}, pools={}, platforms={"p": section})
    with pytest.raises(ConfigError, match=message):
        LibvirtPlatformDriver(section, config, flavour=flavour)
