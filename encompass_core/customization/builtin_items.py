"""Registers the built-in customization item types through ``encompass_customizers``."""

from __future__ import annotations

from .. import hookimpl
from ..lazy import lazy_factory
from ..records import CustomizerRecord

_TYPES = "encompass_core.customization.itemtypes"


@hookimpl
def encompass_customizers():
    # Each type's module is imported when its customizer is made (lazy_factory), not here:
    # ``customize`` asks for every type to apply one of them, and registering stays cheap for
    # commands that do not customize.
    yield CustomizerRecord(name="file", factory=lazy_factory(f"{_TYPES}.file", "FileCustomizer"),
                           description="write a file holding the value (template, mode, owner)")
    yield CustomizerRecord(name="regexp", factory=lazy_factory(f"{_TYPES}.regexp", "RegexpCustomizer"),
                           description="replace what a pattern matches in a file by the value")
    yield CustomizerRecord(name="bootscript",
                           factory=lazy_factory(f"{_TYPES}.bootscript", "BootscriptCustomizer"),
                           description="a script run once at the next boot (systemd, SysV, busybox)")
    yield CustomizerRecord(name="delete", factory=lazy_factory(f"{_TYPES}.delete", "DeleteCustomizer"),
                           description="remove a file (no value)")
    yield CustomizerRecord(name="cloud-init",
                           factory=lazy_factory(f"{_TYPES}.cloudinit", "CloudInitCustomizer"),
                           description="a cloud-init NoCloud seed: the value is the user-data")
    yield CustomizerRecord(name="service", factory=lazy_factory(f"{_TYPES}.service", "ServiceCustomizer"),
                           description="services started at boot: NAME[:on|off|mask],... "
                           "(systemd, SysV, OpenRC, busybox)")
    yield CustomizerRecord(name="network", factory=lazy_factory(f"{_TYPES}.network", "NetworkCustomizer"),
                           description="an interface's static address or DHCP (ifupdown, netplan, "
                           "NetworkManager, networkd, ifcfg)")
    yield CustomizerRecord(name="kernel", factory=lazy_factory(f"{_TYPES}.kernel", "KernelCustomizer"),
                           description="the installed kernel that boots: GRUB default, extlinux "
                           "DEFAULT, vmlinuz links (hardware-dependent)")
