"""One platform driver for any libvirt URI: KVM/QEMU (``kvm``) and Xen (``xen``) machines.

A ``[platforms.NAME]`` table configures one driver::

    [platforms.kvm]
    driver = "kvm"
    uri = "qemu:///system"     # any libvirt URI; "private": a daemon Encompass starts itself
    domain_type = "auto"       # kvm when the host offers it, else qemu (software emulation)
    network = "user"           # user | network:NAME | bridge:NAME | none (new machines' NIC)
    shutdown_timeout = 10      # seconds an undeploy waits for an ACPI shutdown, then pulls the plug
    console_dir = "consoles"   # where console logs go (default: beside each machine's boot files)

The driver is built in layers, one module each: :mod:`.connection` (the libvirt URI and a
private daemon), :mod:`.machines` (discovery, power, consoles) and :mod:`.definitions`
(create, remove, deploy, undeploy). This module reads the settings.

libvirt-python is imported only when a driver first talks to libvirt, so listing plugins works
without it.
"""

from __future__ import annotations

from typing import Any

import attrs

from encompass_core.config import Config, Section
from encompass_core.contracts import PlatformCapabilities, PlatformDriver
from encompass_core.errors import ConfigError

from .connection import DEFAULT_URI, PRIVATE
from .definitions import LibvirtDefinitions
from .settings import PYGRUB


class LibvirtPlatformDriver(LibvirtDefinitions, PlatformDriver):
    """The machines of one libvirt connection (one ``[platforms.NAME]`` table)."""

    capabilities = PlatformCapabilities(kind="virtual", attach_kinds=("file",),
                                        boot_modes=("kernel", "disk"), create_machines=True,
                                        reconfigure=True)

    def __init__(self, section: Section, config: Config, flavour: str = "kvm") -> None:
        if flavour not in DEFAULT_URI:
            raise ConfigError(f"unknown libvirt flavour {flavour!r}")
        self.platform = section.name
        self.flavour = flavour
        if flavour == "kvm":  # QEMU's own iSCSI and NFS clients open LUNs and NFS files
            self.capabilities = attrs.evolve(self.capabilities, attach_kinds=("file", "iscsi", "nfs"))
        self.config = config
        self.uri_setting = section.setting("uri", DEFAULT_URI[flavour], str)
        if self.uri_setting == PRIVATE and flavour != "kvm":
            raise ConfigError(f"platform '{section.name}': uri = \"private\" starts a QEMU daemon; "
                              "a Xen platform needs the host's own (uri = \"xen:///system\")")
        self.domain_type_setting = section.setting("domain_type", "auto", str)
        if self.domain_type_setting not in ("auto", "kvm", "qemu"):
            raise ConfigError(f"platform '{section.name}': domain_type = "
                              f"{self.domain_type_setting!r}; use auto, kvm or qemu")
        console_dir = section.setting("console_dir", None, str)
        self.console_dir = config.resolve_path(console_dir) if console_dir else None
        self.network = section.setting("network", "user" if flavour == "kvm" else "none", str)
        self.shutdown_timeout = _seconds(section, "shutdown_timeout", 10)
        self.xen_mode = section.setting("xen_mode", "pv", str)
        self.bootloader = section.setting("bootloader", PYGRUB, str)
        private_dir = section.setting("private_dir", None, str)
        self.private_dir = (config.resolve_path(private_dir) if private_dir
                            else config.home / "libvirt" / section.name)
        self._daemon: Any = None
        self._connection: Any = None
        self._domain_type: str | None = None


def _seconds(section: Section, key: str, default: float) -> float:
    value = section.setting(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigError(f"setting '{key}' of '{section.name}' should be a number of seconds, "
                          f"found {value!r}")
    return float(value)
