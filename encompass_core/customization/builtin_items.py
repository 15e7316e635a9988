"""Registers the built-in customization item types through ``encompass_customizers``."""

from __future__ import annotations

from .. import hookimpl
from ..records import CustomizerRecord


@hookimpl
def encompass_customizers():
    # Imported here, not above: registering plugins must stay cheap for commands that do not
    # customize (every command loads the plugins that register drivers).
    from .itemtypes.bootscript import BootscriptCustomizer
    from .itemtypes.cloudinit import CloudInitCustomizer
    from .itemtypes.delete import DeleteCustomizer
    from .itemtypes.file import FileCustomizer
    from .itemtypes.kernel import KernelCustomizer
    from .itemtypes.network import NetworkCustomizer
    from .itemtypes.regexp import RegexpCustomizer
    from .itemtypes.service import ServiceCustomizer

    yield CustomizerRecord(name="file", factory=FileCustomizer,
                           description="write a file holding the value (template, mode, owner)")
    yield CustomizerRecord(name="regexp", factory=RegexpCustomizer,
                           description="replace what a pattern matches in a file by the value")
    yield CustomizerRecord(name="bootscript", factory=BootscriptCustomizer,
                           description="a script run once at the next boot (systemd, SysV, busybox)")
    yield CustomizerRecord(name="delete", factory=DeleteCustomizer,
                           description="remove a file (no value)")
    yield CustomizerRecord(name="cloud-init", factory=CloudInitCustomizer,
                           description="a cloud-init NoCloud seed: the value is the user-data")
    yield CustomizerRecord(name="service", factory=ServiceCustomizer,
                           description="services started at boot: NAME[:on|off|mask],... "
                           "(systemd, SysV, OpenRC, busybox)")
    yield CustomizerRecord(name="network", factory=NetworkCustomizer,
                           description="an interface's static address or DHCP (ifupdown, netplan, "
                           "NetworkManager, networkd, ifcfg)")
    yield CustomizerRecord(name="kernel", factory=KernelCustomizer,
                           description="the installed kernel that boots: GRUB default, extlinux "
                           "DEFAULT, vmlinuz links (hardware-dependent)")
