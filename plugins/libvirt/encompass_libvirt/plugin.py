"""Hook implementations: the ``kvm`` and ``xen`` platform drivers, one entry point each.

Each entry point names one class here; the plugin host instantiates it and pluggy registers
the instance, so each registers only its own record and the two never clash. Nothing here
imports libvirt: ``encompass plugins`` works without libvirt-python installed.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import TYPE_CHECKING

from encompass_core import hookimpl
from encompass_core.records import PlatformDriverRecord

from .settings import SETTINGS

if TYPE_CHECKING:
    from encompass_core.config import Config, Section
    from encompass_core.contracts import PlatformDriver

#: The edition of the driver contract this plugin is written for (encompass_core.contracts).
CONTRACT_EDITION = 2

DEBIAN_PACKAGES = ("libvirt-clients", "libvirt-daemon", "libvirt-daemon-driver-qemu",
                   "qemu-system-x86", "qemu-utils")


def _driver(section: Section, config: Config, flavour: str) -> PlatformDriver:
    """The driver of one platform; its module is imported here, when a platform is first used
    (every command that loads plugins imports this entry point)."""
    from .driver import LibvirtPlatformDriver

    return LibvirtPlatformDriver(section, config, flavour=flavour)


def _record(flavour: str, description: str, packages: tuple[str, ...]) -> PlatformDriverRecord:
    return PlatformDriverRecord(
        name=flavour,
        factory=partial(_driver, flavour=flavour),
        description=description,
        debian_packages=packages,
        settings=SETTINGS,
    )


class KvmPlugin:
    """KVM/QEMU machines: ``qemu:///session`` by default, any qemu URI, or a private daemon."""

    @hookimpl
    def encompass_platform_drivers(self) -> Iterator[PlatformDriverRecord]:
        yield _record("kvm", "KVM/QEMU virtual machines through libvirt (uri = qemu:///..., "
                             "qemu+ssh://..., or \"private\")", DEBIAN_PACKAGES)


class XenPlugin:
    """Xen machines (PV, PVH, HVM): ``xen:///system`` by default, or any Xen URI."""

    @hookimpl
    def encompass_platform_drivers(self) -> Iterator[PlatformDriverRecord]:
        yield _record("xen", "Xen virtual machines (PV, PVH, HVM) through libvirt "
                             "(uri = xen:///system, xen+ssh://...)",
                      ("libvirt-clients", "libvirt-daemon-driver-xen"))
