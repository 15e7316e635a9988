"""libvirt domain XML for KVM/QEMU and Xen machines, built with :mod:`xml.etree`.

The KVM shape was proven by booting the demo master (``encompass_core.demo.guest``) through a
private libvirt daemon under QEMU software emulation: domain type ``qemu`` (TCG) or ``kvm``,
ACPI so the guest can power itself off (without ``<features><acpi/>`` a guest never powers off
under libvirt), virtio disks ``vda``, ``vdb``, ... in the given order, the first serial port
written to a file (the console log), and direct kernel boot when a kernel is given (extracted
from the image, as pygrub does for Xen PV), disk boot otherwise.

Xen domains come in three modes (``XEN_MODES``): ``pv`` (direct kernel, or a bootloader such as
pygrub reading the kernel from the guest's disk), ``pvh`` (direct kernel) and ``hvm`` (firmware
boot from disk, or direct kernel). Every builder's output validates with
``virt-xml-validate FILE domain`` (the tests check it).
"""

from __future__ import annotations

import string
import uuid as uuid_module
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from pathlib import Path

import attrs

from .settings import PYGRUB

#: Disk formats QEMU reads that a volume may carry.
DISK_FORMATS = frozenset({"raw", "qcow2", "vmdk", "vdi", "vhdx"})
DOMAIN_TYPES = frozenset({"kvm", "qemu"})
XEN_MODES = ("pv", "pvh", "hvm")
HVMLOADER = "/usr/lib/xen/boot/hvmloader"
MAX_DISKS = 26
#: Disk kinds QEMU reaches over the network itself (libvirt ``<disk type='network'>``).
NETWORK_KINDS = ("iscsi", "nfs")


@attrs.frozen
class Disk:
    """One disk of a domain: a file (or block device) path, its format, read-only or not; or an
    iSCSI LUN (``kind="iscsi"``, ``path`` is ``IQN/LUN`` on ``host``:``port``, reached as
    ``initiator``), which QEMU's own iSCSI client opens (Debian ``qemu-block-extra``); or a file
    on an NFS server (``kind="nfs"``, ``path`` is ``/export/path`` on ``host``), which QEMU's NFS
    client reads over NFSv3 (it asks the server's portmapper: ``port`` is unused),
    speaking as ``identity`` (uid, gid: the owner the pool gives its files)."""

    path: str = attrs.field(converter=str)
    format: str = "raw"
    readonly: bool = False
    kind: str = "file"  # file | block | iscsi | nfs
    host: str = ""
    port: int = 3260
    initiator: str = ""
    identity: tuple[int, int] | None = None


def as_disk(value: Disk | tuple) -> Disk:
    """A :class:`Disk` from itself or a ``(path, format[, readonly])`` tuple."""
    return value if isinstance(value, Disk) else Disk(*value)


def kvm_domain_xml(
    name: str,
    memory_mib: int,
    vcpus: int,
    disks: Sequence[Disk | tuple[Path | str, str]],
    kernel: Path | str | None,
    initrd: Path | str | None,
    cmdline: str,
    console_log: Path | str,
    arch: str = "x86_64",
    uuid: str | None = None,
    *,
    domain_type: str = "kvm",
    firmware: str = "bios",
    interfaces: Iterable[str] = (),
) -> str:
    """The XML of a KVM/QEMU domain.

    ``disks`` are :class:`Disk` values or ``(path, format)`` pairs, attached as virtio ``vda``,
    ``vdb``, ... (none: a machine shell, defined before an image is deployed on it);
    ``kernel``/``initrd``/``cmdline`` select direct kernel boot (``kernel=None`` boots the
    first disk); ``console_log`` receives everything the guest writes to its first serial
    port (``console=ttyS0``). ``domain_type`` is ``"kvm"`` (hardware acceleration) or
    ``"qemu"`` (software emulation, TCG); ``firmware`` ``"bios"`` or ``"uefi"``;
    ``interfaces`` are ``<interface>`` elements as XML text (see :func:`interface_xml`).
    Raises :class:`ValueError` on a bad argument.
    """
    if domain_type not in DOMAIN_TYPES:
        raise ValueError(f"domain type {domain_type!r} is not one of {sorted(DOMAIN_TYPES)}")
    domain = _common(domain_type, name, memory_mib, vcpus, uuid)
    os_element = ET.SubElement(domain, "os", **({"firmware": "efi"} if firmware == "uefi" else {}))
    _text(os_element, "type", "hvm", arch=arch)
    _boot(os_element, kernel, initrd, cmdline)
    features = ET.SubElement(domain, "features")
    ET.SubElement(features, "acpi")
    _tail(domain)
    devices = ET.SubElement(domain, "devices")
    _disks(devices, disks, "vd", "virtio")
    _interfaces(devices, interfaces)
    _file_serial(devices, console_log)
    ET.SubElement(devices, "memballoon", model="none")
    return _serialize(domain)


def xen_domain_xml(
    name: str,
    memory_mib: int,
    vcpus: int,
    disks: Sequence[Disk | tuple[Path | str, str]],
    console_log: Path | str | None,
    *,
    mode: str = "pv",
    kernel: Path | str | None = None,
    initrd: Path | str | None = None,
    cmdline: str = "",
    bootloader: str | None = None,
    arch: str = "x86_64",
    uuid: str | None = None,
    interfaces: Iterable[str] = (),
) -> str:
    """The XML of a Xen domain in ``mode`` ``pv``, ``pvh`` or ``hvm``.

    PV and PVH boot ``kernel`` directly, or through ``bootloader`` (default :data:`PYGRUB`)
    reading it from the first disk when no kernel is given; HVM boots its first disk through the firmware, or
    ``kernel`` directly. Disks are paravirtual ``xvda``, ``xvdb``, ...; the console is Xen's
    PV console for PV and PVH, and the first serial port written to ``console_log`` for HVM.
    Raises :class:`ValueError` on a bad argument.
    """
    if mode not in XEN_MODES:
        raise ValueError(f"Xen mode {mode!r} is not one of {', '.join(XEN_MODES)}")
    domain = _common("xen", name, memory_mib, vcpus, uuid)
    if mode != "hvm" and kernel is None:
        _text(domain, "bootloader", bootloader or PYGRUB)
    os_element = ET.SubElement(domain, "os")
    if mode == "hvm":
        _text(os_element, "type", "hvm", arch=arch, machine="xenfv")
        _text(os_element, "loader", HVMLOADER, type="rom")
        _boot(os_element, kernel, initrd, cmdline)
        features = ET.SubElement(domain, "features")
        for feature in ("acpi", "apic", "pae"):
            ET.SubElement(features, feature)
    else:
        _text(os_element, "type", "xen" if mode == "pv" else "xenpvh", arch=arch,
              machine="xenpv" if mode == "pv" else "xenpvh")
        if kernel is not None:
            _boot(os_element, kernel, initrd, cmdline)
    _tail(domain)
    devices = ET.SubElement(domain, "devices")
    _disks(devices, disks, "xvd", "xen")
    _interfaces(devices, interfaces)
    if mode == "hvm" and console_log is not None:
        _file_serial(devices, console_log)
    else:
        console = ET.SubElement(devices, "console", type="pty")
        ET.SubElement(console, "target", type="xen", port="0")
    return _serialize(domain)


def interface_xml(network: str, model: str | None = "virtio", mac: str | None = None) -> str:
    """An ``<interface>`` for ``network``: ``user``, ``network:NAME`` or ``bridge:NAME``."""
    kind, _, source = network.partition(":")
    if kind not in ("user", "network", "bridge") or (kind != "user") != bool(source):
        raise ValueError(f"network {network!r}: use user, network:NAME or bridge:NAME")
    interface = ET.Element("interface", type=kind)
    if mac:
        ET.SubElement(interface, "mac", address=mac)
    if source:
        ET.SubElement(interface, "source", **{kind: source})
    if model:
        ET.SubElement(interface, "model", type=model)
    return ET.tostring(interface, encoding="unicode")


# -- pieces ------------------------------------------------------------------------------------
def _common(domain_type: str, name: str, memory_mib: int, vcpus: int, uuid: str | None) -> ET.Element:
    if memory_mib < 16 or vcpus < 1:
        raise ValueError(f"a machine needs >= 16 MiB and >= 1 vcpu, not {memory_mib}/{vcpus}")
    domain = ET.Element("domain", type=domain_type)
    _text(domain, "name", name)
    _text(domain, "uuid", uuid or str(uuid_module.uuid4()))
    _text(domain, "memory", str(memory_mib), unit="MiB")
    _text(domain, "vcpu", str(vcpus))
    return domain


def _boot(os_element: ET.Element, kernel: Path | str | None, initrd: Path | str | None,
          cmdline: str) -> None:
    if kernel is None:
        ET.SubElement(os_element, "boot", dev="hd")
        return
    _text(os_element, "kernel", str(kernel))
    if initrd is not None:
        _text(os_element, "initrd", str(initrd))
    if cmdline:
        _text(os_element, "cmdline", cmdline)


def _tail(domain: ET.Element) -> None:
    ET.SubElement(domain, "clock", offset="utc")
    # A guest that powers off, reboots or crashes is done: the platform driver decides what next.
    for event in ("on_poweroff", "on_reboot", "on_crash"):
        _text(domain, event, "destroy")


def _disks(devices: ET.Element, disks: Sequence, prefix: str, bus: str) -> None:
    if len(disks) > MAX_DISKS:
        raise ValueError(f"a machine takes at most {MAX_DISKS} disks, not {len(disks)}")
    for letter, disk in zip(string.ascii_lowercase, map(as_disk, disks), strict=False):
        if disk.format not in DISK_FORMATS:
            raise ValueError(f"disk {disk.path}: format {disk.format!r} is not one of "
                             f"{sorted(DISK_FORMATS)}")
        element = ET.SubElement(devices, "disk", device="disk",
                                type="network" if disk.kind in NETWORK_KINDS else disk.kind)
        ET.SubElement(element, "driver", name="qemu", type=disk.format)
        if disk.kind in NETWORK_KINDS:
            _network_source(element, disk)
        else:
            ET.SubElement(element, "source", **{"file" if disk.kind == "file" else "dev": disk.path})
        ET.SubElement(element, "target", dev=f"{prefix}{letter}", bus=bus)
        if disk.readonly:
            ET.SubElement(element, "readonly")


def _network_source(element: ET.Element, disk: Disk) -> None:
    source = ET.SubElement(element, "source", protocol=disk.kind, name=disk.path)
    # libvirt refuses a port for NFS: QEMU finds the server's ports through its portmapper.
    ET.SubElement(source, "host", name=disk.host,
                  **({} if disk.kind == "nfs" else {"port": str(disk.port)}))
    if disk.initiator:
        ET.SubElement(ET.SubElement(source, "initiator"), "iqn", name=disk.initiator)
    if disk.kind == "nfs":  # libvirt 9.0's schema wants the element; "+N" is a numeric id
        ET.SubElement(source, "identity",
                      **({"user": f"+{disk.identity[0]}", "group": f"+{disk.identity[1]}"}
                         if disk.identity else {}))


def _interfaces(devices: ET.Element, interfaces: Iterable[str]) -> None:
    for text in interfaces:
        devices.append(ET.fromstring(text))


def _file_serial(devices: ET.Element, console_log: Path | str) -> None:
    serial = ET.SubElement(devices, "serial", type="file")
    ET.SubElement(serial, "source", path=str(console_log), append="off")
    ET.SubElement(serial, "target", port="0")
    console = ET.SubElement(devices, "console", type="file")
    ET.SubElement(console, "source", path=str(console_log), append="off")
    ET.SubElement(console, "target", type="serial", port="0")


def _serialize(domain: ET.Element) -> str:
    ET.indent(domain)
    return ET.tostring(domain, encoding="unicode")


def _text(parent: ET.Element, tag: str, text: str, **attributes: str) -> ET.Element:
    element = ET.SubElement(parent, tag, **attributes)
    element.text = text
    return element
