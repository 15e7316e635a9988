"""One platform driver for any libvirt URI: KVM/QEMU (``kvm``) and Xen (``xen``) machines.

A ``[platforms.NAME]`` table configures one driver::

    [platforms.kvm]
    driver = "kvm"
    uri = "qemu:///system"     # any libvirt URI; "private": a daemon Encompass starts itself
    domain_type = "auto"       # kvm when the host offers it, else qemu (software emulation)
    network = "user"           # user | network:NAME | bridge:NAME | none (new machines' NIC)
    shutdown_timeout = 10      # seconds an undeploy waits for an ACPI shutdown, then pulls the plug
    console_dir = "consoles"   # where console logs go (default: beside each machine's boot files)

libvirt-python is imported only when a driver first talks to libvirt, so listing plugins works
without it.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import attrs

from encompass_core.config import Config, Section
from encompass_core.contracts import Attachment
from encompass_core.errors import ConfigError, Conflict, DriverError, NotFound
from encompass_core.model import HardwareProfile, Image, Machine

from . import bootfiles, domfacts, domxml

DEFAULT_URI = {"kvm": "qemu:///session", "xen": "xen:///system"}
PRIVATE = "private"
#: Where xenconsoled writes guest consoles (with XENCONSOLED_TRACE=guest).
XEN_CONSOLE_DIR = "/var/log/xen/console"
_LOCAL_URI = re.compile(r"^(qemu|xen|test)(\+unix)?://(/|$)")

_libvirt_module: Any = None


def libvirt() -> Any:
    """The ``libvirt`` module, imported on first use, with its stderr error printer silenced."""
    global _libvirt_module
    if _libvirt_module is None:
        try:
            import libvirt as module
        except ImportError as exc:
            raise DriverError(
                "libvirt-python is not installed, so the kvm and xen platforms cannot work: "
                "./setup_plugins libvirt (or pip install libvirt-python)"
            ) from exc
        # libvirt prints every error on stderr by default; ours carry the message instead.
        module.registerErrorHandler(lambda _context, _error: None, None)
        _libvirt_module = module
    return _libvirt_module


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


class LibvirtPlatformDriver:
    """The machines of one libvirt connection (one ``[platforms.NAME]`` table)."""

    kind = "virtual"

    def __init__(self, section: Section, config: Config, flavour: str = "kvm") -> None:
        if flavour not in DEFAULT_URI:
            raise ConfigError(f"unknown libvirt flavour {flavour!r}")
        self.platform = section.name
        self.flavour = flavour
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
        self.bootloader = section.setting("bootloader", domxml.PYGRUB, str)
        private_dir = section.setting("private_dir", None, str)
        self.private_dir = (config.resolve_path(private_dir) if private_dir
                            else config.home / "libvirt" / section.name)
        self._daemon: Any = None
        self._connection: Any = None
        self._domain_type: str | None = None

    # -- connection ---------------------------------------------------------------------------
    @property
    def uri(self) -> str:
        """The libvirt URI actually used (a private daemon's socket once it runs)."""
        if self.uri_setting == PRIVATE:
            return self._private_daemon().uri
        return self.uri_setting

    def _private_daemon(self) -> Any:
        if self._daemon is None:
            from .daemon import ensure_private_daemon

            self._daemon = ensure_private_daemon(self.private_dir)
        return self._daemon

    def connection(self) -> Any:
        """An open connection to libvirt, reopened when it was lost."""
        lv = libvirt()
        if self._connection is not None:
            with contextlib.suppress(lv.libvirtError):
                if self._connection.isAlive():
                    return self._connection
            self._connection = None
        uri = self.uri
        try:
            self._connection = lv.open(uri)
        except lv.libvirtError as exc:
            advice = ("start the daemon (libvirtd, or virtqemud/virtxend), check the uri setting "
                      f"of platform '{self.platform}' in {self.config.path}")
            if self.flavour == "kvm":
                advice += ", or set uri = \"private\" to let Encompass run a daemon of its own"
            raise DriverError(f"cannot reach libvirt at {uri} (platform '{self.platform}'): "
                              f"{_one_line(exc.get_error_message())}; {advice}") from None
        return self._connection

    def close(self) -> None:
        """Close the connection (a private daemon keeps running: see :meth:`stop_private_daemon`)."""
        if self._connection is not None:
            with contextlib.suppress(Exception):
                self._connection.close()
            self._connection = None

    def stop_private_daemon(self) -> None:
        """Stop the private daemon of ``uri = "private"`` and the guests it runs (``encompass demo``)."""
        self.close()
        if self.uri_setting != PRIVATE:
            return
        if self._daemon is None:
            from .daemon import attach_private_daemon

            self._daemon = attach_private_daemon(self.private_dir)
        if self._daemon is not None:
            self._daemon.stop()
            self._daemon = None

    def domain_type(self) -> str:
        """``xen`` for Xen; for KVM ``kvm`` when libvirt offers it for x86_64 guests, else ``qemu``."""
        if self.flavour == "xen":
            return "xen"
        if self.domain_type_setting != "auto":
            return self.domain_type_setting
        if self._domain_type is None:
            capabilities = ET.fromstring(self.connection().getCapabilities())
            types = {d.get("type") for d in capabilities.findall("guest/arch/domain")}
            self._domain_type = "kvm" if "kvm" in types else "qemu"
        return self._domain_type

    # -- machines -----------------------------------------------------------------------------
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

    def create_machine(self, name: str, image: Image) -> Machine:
        lv = libvirt()
        connection = self.connection()
        with contextlib.suppress(lv.libvirtError):
            connection.lookupByName(name)
            raise Conflict(
                f"cannot create machine '{name}' on platform '{self.platform}': libvirt at "
                f"{self.uri} has a domain named '{name}' already. Deploy on it (encompass discover "
                f"--platform {self.platform}; encompass deploy {image.name} {name}), or remove it "
                f"(virsh -c '{self.uri}' undefine {name})"
            )
        hardware = image.hardware
        xml = self._domain_xml(name, None, hardware.memory_mib, hardware.cpus, hardware.arch,
                               hardware.firmware, [], None, self._new_interfaces(), image)
        try:
            domain = connection.defineXML(xml)
        except lv.libvirtError as exc:
            raise self._error(f"define machine '{name}'", exc) from None
        return self._machine(domain)

    def destroy_machine(self, machine: Machine) -> None:
        lv = libvirt()
        try:
            domain = self._domain(machine)
        except NotFound:
            return
        try:
            if domain.isActive():
                domain.destroy()
            if domain.isPersistent():
                try:
                    domain.undefineFlags(lv.VIR_DOMAIN_UNDEFINE_NVRAM
                                         | lv.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE)
                except lv.libvirtError:
                    domain.undefine()
        except lv.libvirtError as exc:
            raise self._error(f"remove machine '{machine.name}'", exc) from None
        shutil.rmtree(self._machine_dir(machine.name), ignore_errors=True)

    def deploy(self, machine: Machine, image: Image, attachments: list[Attachment]) -> Machine:
        lv = libvirt()
        connection = self.connection()
        domain = self._domain(machine)
        try:
            if domain.isActive():
                raise Conflict(
                    f"cannot deploy '{image.name}' on machine '{machine.name}': it is running "
                    f"(outside Encompass' records). Power it off first: encompass machine power "
                    f"{machine.name} off"
                )
            previous = domain.XMLDesc(lv.VIR_DOMAIN_XML_INACTIVE)
        except lv.libvirtError as exc:
            raise self._error(f"read machine '{machine.name}'", exc) from None
        was = domfacts.facts(previous)
        ordered = sorted(attachments, key=lambda a: a.index)
        disks = [self._disk(image, attachment) for attachment in ordered]
        self._check_disks(image, disks)
        boot = None
        if ordered:
            boot = bootfiles.extract(image, ordered[0].address, ordered[0].format,
                                     self._machine_dir(machine.name))
        self._grant(machine.name, disks, boot)
        xml = self._domain_xml(was.name, was.uuid, was.memory_mib, was.vcpus, was.arch,
                               was.firmware, disks, boot, was.interfaces, image)
        try:
            connection.defineXML(xml)
            domain = connection.lookupByUUIDString(was.uuid)
            domain.create()
        except lv.libvirtError as exc:
            # Leave the machine as it was, so the core leaves the image as it was too.
            with contextlib.suppress(lv.libvirtError):
                connection.defineXML(previous)
            raise self._error(f"boot '{image.name}' on machine '{machine.name}'", exc,
                              self._disk_advice(exc)) from None
        return self._machine(domain)

    def undeploy(self, machine: Machine, image: Image) -> Machine:
        lv = libvirt()
        connection = self.connection()
        try:
            domain = self._domain(machine)
        except NotFound:
            return attrs.evolve(machine, power="off", disks=())
        try:
            self._power_off(domain)
            if domain.isPersistent():
                connection.defineXML(domfacts.without_image(domain.XMLDesc(lv.VIR_DOMAIN_XML_INACTIVE)))
        except lv.libvirtError as exc:
            raise self._error(f"undeploy '{image.name}' from machine '{machine.name}'", exc) from None
        for name in ("vmlinuz", "initrd.img"):
            with contextlib.suppress(FileNotFoundError):
                (self._machine_dir(machine.name) / name).unlink()
        return self._machine(domain)

    def console_log(self, machine: Machine) -> Path | None:
        with contextlib.suppress(Exception):
            found = domfacts.facts(self._domain(machine).XMLDesc(0))
            if found.console_log:
                return Path(found.console_log)
            if found.xen_mode in ("pv", "pvh"):
                return Path(self.console_dir or XEN_CONSOLE_DIR) / f"guest-{found.name}.log"
        return self._console_path(machine.name)

    # -- pieces -------------------------------------------------------------------------------
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

    def _new_interfaces(self) -> list[str]:
        if self.network in ("none", ""):
            return []
        try:
            return [domxml.interface_xml(self.network, "virtio" if self.flavour == "kvm" else None)]
        except ValueError as exc:
            raise ConfigError(f"platform '{self.platform}': {exc}") from None

    def _domain_xml(self, name: str, uuid: str | None, memory_mib: int, vcpus: int, arch: str,
                    firmware: str, disks: list[domxml.Disk], boot: bootfiles.BootFiles | None,
                    interfaces: Any, image: Image) -> str:
        console = self._console_path(name)
        try:
            if self.flavour == "kvm":
                return domxml.kvm_domain_xml(
                    name, memory_mib, vcpus, disks, boot.kernel if boot else None,
                    boot.initrd if boot else None, boot.cmdline if boot else "", console, arch,
                    uuid, domain_type=self.domain_type(), firmware=firmware, interfaces=interfaces)
            mode = str(image.hardware.extra.get("xen_mode") or self.xen_mode)
            return domxml.xen_domain_xml(
                name, memory_mib, vcpus, disks, console, mode=mode,
                kernel=boot.kernel if boot else None, initrd=boot.initrd if boot else None,
                cmdline=boot.cmdline if boot else "", bootloader=self.bootloader, arch=arch,
                uuid=uuid, interfaces=interfaces)
        except ValueError as exc:
            raise DriverError(f"cannot describe machine '{name}' for image '{image.name}' on "
                              f"platform '{self.platform}': {exc}") from None

    def _disk(self, image: Image, attachment: Attachment) -> domxml.Disk:
        if attachment.kind in ("file", "block"):
            return domxml.Disk(attachment.address, attachment.format, attachment.readonly,
                               attachment.kind)
        raise DriverError(
            f"cannot deploy '{image.name}' on platform '{self.platform}': its volume "
            f"{attachment.index} is reached as '{attachment.kind}' ({attachment.address}), and "
            "this driver attaches disk images and block devices only. Clone the image into a "
            "pool that keeps disk images (raw or qcow2)"
        )

    def _is_local(self) -> bool:
        return self.uri_setting == PRIVATE or bool(_LOCAL_URI.match(self.uri_setting))

    def _check_disks(self, image: Image, disks: list[domxml.Disk]) -> None:
        """On this host, a missing disk is said plainly before libvirt is asked anything."""
        if not self._is_local() or self.uri_setting.startswith("test:"):
            return
        for disk in disks:
            if not os.path.exists(disk.path):
                raise DriverError(f"cannot deploy '{image.name}': its disk {disk.path} does not "
                                  "exist on this host (see: encompass image show "
                                  f"{image.name})")

    def _grant(self, name: str, disks: list[domxml.Disk], boot: bootfiles.BootFiles | None) -> None:
        """Let a private daemon's user (nobody, under root) use the machine's files."""
        machine_dir = self._machine_dir(name)
        if self.uri_setting != PRIVATE:
            if self._is_local():
                machine_dir.mkdir(parents=True, exist_ok=True)
            return
        daemon = self._private_daemon()
        machine_dir.mkdir(parents=True, exist_ok=True)
        daemon.grant(machine_dir, writable=True)  # QEMU creates the console log there
        if self.console_dir is not None:
            self.console_dir.mkdir(parents=True, exist_ok=True)
            daemon.grant(self.console_dir, writable=True)
        for path in (boot.kernel, boot.initrd) if boot else ():
            if path is not None:
                daemon.grant(path, writable=False)
        for disk in disks:
            daemon.grant(Path(disk.path), writable=not disk.readonly)
            for backing in _backing_chain(disk):
                daemon.grant(backing, writable=False)

    def _power_off(self, domain: Any) -> None:
        """An ACPI shutdown, waited for ``shutdown_timeout`` seconds, then a hard power-off."""
        lv = libvirt()
        if not domain.isActive():
            return
        if self.shutdown_timeout > 0:
            with contextlib.suppress(lv.libvirtError):
                domain.shutdown()
                deadline = time.monotonic() + self.shutdown_timeout
                delay = 0.05
                while domain.isActive() and time.monotonic() < deadline:
                    time.sleep(delay)
                    delay = min(delay * 2, 0.5)
        with contextlib.suppress(lv.libvirtError):
            if domain.isActive():
                domain.destroy()

    def _disk_advice(self, exc: Any) -> str:
        message = str(exc.get_error_message())
        if "ermission denied" in message or "Could not open" in message:
            who = (f"user '{self._daemon.user}' of the private daemon" if self._daemon
                   else "user QEMU runs as")
            return (f"; the hypervisor cannot read a disk: let the {who} read the clone's volumes "
                    "and traverse their directories")
        return ""

    def _error(self, what: str, exc: Any, advice: str = "") -> DriverError:
        return DriverError(f"cannot {what} on platform '{self.platform}' ({self.uri}): libvirt says: "
                           f"{_one_line(exc.get_error_message())}{advice}")


def _backing_chain(disk: domxml.Disk) -> list[Path]:
    """The files a qcow2 disk reads through (QEMU opens them read-only)."""
    if disk.format != "qcow2":
        return []
    from encompass_core.drivers import qemuimg

    chain, path = [], disk.path
    while True:
        backing = qemuimg.info(path).get("full-backing-filename")
        if not backing:
            return chain
        chain.append(Path(backing))
        path = backing


def _seconds(section: Section, key: str, default: float) -> float:
    value = section.setting(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigError(f"setting '{key}' of '{section.name}' should be a number of seconds, "
                          f"found {value!r}")
    return float(value)
