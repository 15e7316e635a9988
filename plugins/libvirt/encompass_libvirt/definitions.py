"""Changes to libvirt domain definitions: create and remove machines, deploy and undeploy images.

Deploying points a domain at the attached volumes (and the kernel extracted from the image, for
direct kernel boot) and boots it; undeploying powers it off and takes the volumes out again.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import attrs

from encompass_core.contracts import Attachment
from encompass_core.errors import ConfigError, Conflict, DriverError, NotFound
from encompass_core.model import HardwareProfile, Image, Machine

from . import bootfiles, domfacts, domxml
from .connection import PRIVATE, libvirt
from .machines import LibvirtMachines


class LibvirtDefinitions(LibvirtMachines):
    """The definitions layer of :class:`~.driver.LibvirtPlatformDriver`."""

    network: str
    shutdown_timeout: float
    xen_mode: str
    bootloader: str

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
        self._grant(name, [], None)  # its console log's folder: it may be powered on before a deploy
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
        if ordered and ordered[0].kind in ("file", "block"):
            boot = bootfiles.extract(image, ordered[0].address, ordered[0].format,
                                     self._machine_dir(machine.name))
        elif ordered and bootfiles.wanted(image) is not None:
            raise DriverError(
                f"cannot deploy '{image.name}' on machine '{machine.name}': its software profile "
                f"asks for direct kernel boot, and its first volume is reached as "
                f"{ordered[0].kind} ({ordered[0].address}), not as a file the kernel can be read "
                "from; let the machine's firmware boot the disk (remove kernel= from the profile)")
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

    def reconfigure(self, machine: Machine, hardware: HardwareProfile) -> Machine:
        """Set the domain's memory and vCPUs in its definition; a running domain is power
        cycled to take them (libvirt changes a running guest's maximum memory only offline)."""
        lv = libvirt()
        connection = self.connection()
        domain = self._domain(machine)
        try:
            xml = domfacts.resized(domain.XMLDesc(lv.VIR_DOMAIN_XML_INACTIVE), hardware.memory_mib,
                                   hardware.cpus)
            running = bool(domain.isActive())
            connection.defineXML(xml)
            if running:
                domain.destroy()
                domain.create()
        except lv.libvirtError as exc:
            raise self._error(f"resize machine '{machine.name}'", exc) from None
        return self._machine(domain)

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
        if attachment.kind == "iscsi" and self.flavour == "kvm":
            return _iscsi_disk(image, attachment)
        if attachment.kind == "nfs" and self.flavour == "kvm":
            return _nfs_disk(image, attachment)
        raise DriverError(
            f"cannot deploy '{image.name}' on platform '{self.platform}': its volume "
            f"{attachment.index} is reached as '{attachment.kind}' ({attachment.address}), and "
            "this driver attaches disk images and block devices only. Clone the image into a "
            "pool that keeps disk images (raw or qcow2)"
        )

    def _check_disks(self, image: Image, disks: list[domxml.Disk]) -> None:
        """On this host, a missing disk is said plainly before libvirt is asked anything."""
        if not self._is_local() or self.uri_setting.startswith("test:"):
            return
        for disk in disks:
            if disk.kind not in domxml.NETWORK_KINDS and not os.path.exists(disk.path):
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
        # QEMU reaches a LUN or an NFS file over TCP itself: nothing on this host to grant.
        for disk in (d for d in disks if d.kind not in domxml.NETWORK_KINDS):
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


def _iscsi_disk(image: Image, attachment: Attachment) -> domxml.Disk:
    """A disk of QEMU's iSCSI client from ``iscsi://HOST[:PORT]/IQN/LUN`` and the initiator name
    the storage bound the target to (``details["initiator"]``)."""
    found = re.fullmatch(r"iscsi://([^/:]+)(?::(\d+))?/(.+)/(\d+)", attachment.address)
    if found is None:
        raise DriverError(f"cannot deploy '{image.name}': its volume {attachment.index} is at "
                          f"{attachment.address}, not an iscsi://HOST:PORT/IQN/LUN address")
    host, port, target, lun = found.groups()
    return domxml.Disk(f"{target}/{lun}", attachment.format, attachment.readonly, "iscsi",
                       host=host, port=int(port or 3260),
                       initiator=str(attachment.details.get("initiator") or ""))


def _nfs_disk(image: Image, attachment: Attachment) -> domxml.Disk:
    """A disk of QEMU's NFS client from ``SERVER:/export/path`` (NFSv3: QEMU asks the server's
    portmapper). A qcow2 overlay is refused: QEMU cannot follow its relative backing name over
    NFS."""
    found = re.fullmatch(r"([^:/]+):(/(?!/).*)", attachment.address)
    if found is None:
        raise DriverError(f"cannot deploy '{image.name}': its volume {attachment.index} is at "
                          f"{attachment.address}, not a SERVER:/export/path address")
    if attachment.format != "raw":
        raise DriverError(f"cannot deploy '{image.name}' over NFS: its volume {attachment.index} is "
                          f"a {attachment.format} overlay, whose backing file QEMU cannot follow over "
                          "NFS. Clone it in full: encompass clone MASTER NAME --mode full")
    server, path = found.groups()
    uid, gid = attachment.details.get("uid"), attachment.details.get("gid")
    identity = (int(uid), int(gid)) if uid is not None and gid is not None else None
    return domxml.Disk(path, attachment.format, attachment.readonly, "nfs", host=server,
                       identity=identity)


def _backing_chain(disk: domxml.Disk) -> list[Path]:
    """The files a qcow2 disk reads through (QEMU opens them read-only): one ``qemu-img info
    --backing-chain`` for the whole chain, as deploy runs this for every disk."""
    if disk.format != "qcow2":
        return []
    from encompass_core.drivers import qemuimg

    layers = json.loads(qemuimg.qemu_img("info", "--output=json", "-U", "--backing-chain",
                                         disk.path))
    return [Path(layer["filename"]) for layer in layers[1:]]
