"""What a platform's libvirt domains are, as Encompass machines: discovery, power, consoles."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from encompass_core.errors import Conflict, NotFound
from encompass_core.model import HardwareProfile, Machine

from . import domfacts
from .connection import PRIVATE, LibvirtConnection, libvirt

#: Where xenconsoled writes guest consoles (with XENCONSOLED_TRACE=guest).
XEN_CONSOLE_DIR = "/var/log/xen/console"


class LibvirtMachines(LibvirtConnection):
    """The machines layer of :class:`~.driver.LibvirtPlatformDriver`: finds domains and reads
    their facts; changes nothing in their definitions."""

    console_dir: Path | None

    def discover(self) -> list[Machine]:
        lv = libvirt()
        connection = self.connection()
        try:
            host = self._host_facts(connection)
            return [self._machine(domain, host) for domain in connection.listAllDomains(0)]
        except lv.libvirtError as exc:
            raise self._error("list the domains", exc) from None

    def power(self, machine: Machine, action: str) -> Machine:
        lv = libvirt()
        domain = self._domain(machine)
        try:
            if action == "on" and not domain.isActive():
                domain.create()
            elif action == "off" and domain.isActive():
                domain.destroy()
            elif action == "reset":
                # Our domains turn a reset into a power-off (on_reboot=destroy, for the
                # guest's own reboots): a reset from here is a power cycle.
                if domain.isActive():
                    domain.destroy()
                domain.create()
            elif action not in ("on", "off"):
                raise Conflict(f"unknown power action '{action}': use on, off or reset")
        except lv.libvirtError as exc:
            raise self._error(f"power {action} machine '{machine.name}'", exc) from None
        return self._machine(domain)

    def console_log(self, machine: Machine) -> Path | None:
        with contextlib.suppress(Exception):
            found = domfacts.facts(self._domain(machine).XMLDesc(0))
            if found.console_log:
                return Path(found.console_log)
            if found.xen_mode in ("pv", "pvh"):
                return Path(self.console_dir or XEN_CONSOLE_DIR) / f"guest-{found.name}.log"
        return self._console_path(machine.name)

    def _domain(self, machine: Machine) -> Any:
        lv = libvirt()
        connection = self.connection()
        if machine.uuid:
            with contextlib.suppress(lv.libvirtError):
                return connection.lookupByUUIDString(machine.uuid)
        try:
            return connection.lookupByName(machine.name)
        except lv.libvirtError:
            raise NotFound(f"machine '{machine.name}' is not on platform '{self.platform}' "
                           f"(libvirt at {self.uri} has no such domain); see: encompass discover "
                           f"--platform {self.platform}") from None

    def _machine(self, domain: Any, host: dict[str, Any] | None = None) -> Machine:
        found = domfacts.facts(domain.XMLDesc(0))
        active = bool(domain.isActive())
        extra = {"driver": self.flavour, "uri": self.uri, "domain_type": found.domain_type,
                 "persistent": bool(domain.isPersistent())}
        if found.xen_mode:
            extra["xen_mode"] = found.xen_mode
        if host:
            extra["host"] = host
        return Machine(
            name=found.name, platform=self.platform, kind="virtual", uuid=found.uuid,
            hardware=HardwareProfile(memory_mib=found.memory_mib, cpus=found.vcpus,
                                     arch=found.arch, firmware=found.firmware),
            power="on" if active else "off", macs=found.macs, disks=found.disks, extra=extra,
        )

    def _host_facts(self, connection: Any) -> dict[str, Any]:
        model, memory_mib, cpus, mhz, *_ = connection.getInfo()
        return {"hostname": connection.getHostname(), "hypervisor": connection.getType(),
                "cpus": cpus, "memory_mib": memory_mib, "cpu_model": model, "mhz": mhz}

    def _machine_dir(self, name: str) -> Path:
        if self.uri_setting == PRIVATE:
            return self._private_daemon().dirs.guests / name
        return self.config.home / "libvirt" / self.platform / "machines" / name

    def _console_path(self, name: str) -> Path:
        if self.console_dir is not None:
            return self.console_dir / f"{name}.log"
        return self._machine_dir(name) / "console.log"
