"""libvirt domain XML for KVM/QEMU machines, built with :mod:`xml.etree`.

The shape was proven by booting the demo master (``encompass_core.demo.guest``) through a
private libvirt daemon under QEMU software emulation: domain type ``qemu`` (TCG) or ``kvm``,
ACPI so the guest can power itself off, virtio disks ``vda``, ``vdb``, ... in the given order,
the first serial port written to a file (the console log), and direct kernel boot when a
kernel is given (extracted from the image, as pygrub does for Xen PV), disk boot otherwise.
"""

from __future__ import annotations

import string
import uuid as uuid_module
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

#: Disk formats QEMU reads that a volume may carry.
DISK_FORMATS = frozenset({"raw", "qcow2", "vmdk", "vdi", "vhdx"})
DOMAIN_TYPES = frozenset({"kvm", "qemu"})


def kvm_domain_xml(
    name: str,
    memory_mib: int,
    vcpus: int,
    disks: Sequence[tuple[Path | str, str]],
    kernel: Path | str | None,
    initrd: Path | str | None,
    cmdline: str,
    console_log: Path | str,
    arch: str = "x86_64",
    uuid: str | None = None,
    *,
    domain_type: str = "kvm",
) -> str:
    """The XML of a transient or persistent KVM/QEMU domain.

    ``disks`` are ``(path, format)`` pairs, attached as virtio ``vda``, ``vdb``, ...;
    ``kernel``/``initrd``/``cmdline`` select direct kernel boot (``kernel=None`` boots the
    first disk); ``console_log`` receives everything the guest writes to its first serial
    port (``console=ttyS0``). ``domain_type`` is ``"kvm"`` (hardware acceleration) or
    ``"qemu"`` (software emulation, TCG). Raises :class:`ValueError` on a bad argument.
    """
    if domain_type not in DOMAIN_TYPES:
        raise ValueError(f"domain type {domain_type!r} is not one of {sorted(DOMAIN_TYPES)}")
    if memory_mib < 16 or vcpus < 1:
        raise ValueError(f"a machine needs >= 16 MiB and >= 1 vcpu, not {memory_mib}/{vcpus}")
    if not disks or len(disks) > 26:
        raise ValueError(f"a machine needs 1 to 26 disks, not {len(disks)}")

    domain = ET.Element("domain", type=domain_type)
    _text(domain, "name", name)
    _text(domain, "uuid", uuid or str(uuid_module.uuid4()))
    _text(domain, "memory", str(memory_mib), unit="MiB")
    _text(domain, "vcpu", str(vcpus))

    os_element = ET.SubElement(domain, "os")
    _text(os_element, "type", "hvm", arch=arch)
    if kernel is not None:
        _text(os_element, "kernel", str(kernel))
        if initrd is not None:
            _text(os_element, "initrd", str(initrd))
        if cmdline:
            _text(os_element, "cmdline", cmdline)
    else:
        ET.SubElement(os_element, "boot", dev="hd")

    features = ET.SubElement(domain, "features")
    ET.SubElement(features, "acpi")
    ET.SubElement(domain, "clock", offset="utc")
    # A guest that powers off, reboots or crashes is done: the platform driver decides what next.
    for event in ("on_poweroff", "on_reboot", "on_crash"):
        _text(domain, event, "destroy")

    devices = ET.SubElement(domain, "devices")
    for letter, (path, disk_format) in zip(string.ascii_lowercase, disks, strict=False):
        if disk_format not in DISK_FORMATS:
            raise ValueError(f"disk {path}: format {disk_format!r} is not one of "
                             f"{sorted(DISK_FORMATS)}")
        disk = ET.SubElement(devices, "disk", type="file", device="disk")
        ET.SubElement(disk, "driver", name="qemu", type=disk_format)
        ET.SubElement(disk, "source", file=str(path))
        ET.SubElement(disk, "target", dev=f"vd{letter}", bus="virtio")

    serial = ET.SubElement(devices, "serial", type="file")
    ET.SubElement(serial, "source", path=str(console_log), append="off")
    ET.SubElement(serial, "target", port="0")
    console = ET.SubElement(devices, "console", type="file")
    ET.SubElement(console, "source", path=str(console_log), append="off")
    ET.SubElement(console, "target", type="serial", port="0")
    ET.SubElement(devices, "memballoon", model="none")

    ET.indent(domain)
    return ET.tostring(domain, encoding="unicode")


def _text(parent: ET.Element, tag: str, text: str, **attributes: str) -> ET.Element:
    element = ET.SubElement(parent, tag, **attributes)
    element.text = text
    return element
