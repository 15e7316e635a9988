"""What a libvirt domain's XML says about it, and the XML of it with no image deployed.

Discovery reads machines from here (name, UUID, vCPUs, memory, architecture, firmware, MACs,
disks); deploy keeps a machine's own devices (its network interfaces) when it redefines it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import attrs

from .domxml import PYGRUB

_KIB_PER_UNIT = {"b": 1 / 1024, "bytes": 1 / 1024, "k": 1, "kib": 1, "kb": 1000 / 1024,
                 "m": 1024, "mib": 1024, "mb": 1000 ** 2 / 1024, "g": 1024 ** 2, "gib": 1024 ** 2,
                 "gb": 1000 ** 3 / 1024, "t": 1024 ** 3, "tib": 1024 ** 3}


@attrs.frozen
class DomainFacts:
    """The facts about one domain that Encompass keeps in a :class:`~encompass_core.model.Machine`."""

    name: str
    uuid: str
    domain_type: str  # kvm | qemu | xen | test ...
    os_type: str  # hvm | xen (PV) | xenpvh | linux (PV, older spelling)
    memory_mib: int
    vcpus: int
    arch: str
    firmware: str  # bios | uefi
    macs: tuple[str, ...]
    disks: tuple[str, ...]
    interfaces: tuple[str, ...]  # <interface> elements as XML text
    console_log: str | None  # the file the first serial port writes to, if any

    @property
    def xen_mode(self) -> str | None:
        """``pv``, ``pvh`` or ``hvm`` for a Xen domain, None for others."""
        if self.domain_type != "xen":
            return None
        return {"hvm": "hvm", "xenpvh": "pvh"}.get(self.os_type, "pv")


def facts(xml: str) -> DomainFacts:
    """Read a domain's XML (``virDomain.XMLDesc()``)."""
    root = ET.fromstring(xml)
    os_type = root.find("os/type")
    memory = root.find("memory")
    os_element = root.find("os")
    efi = os_element is not None and (os_element.get("firmware") == "efi"
                                      or os_element.find("loader[@type='pflash']") is not None)
    console = root.find("devices/serial[@type='file']/source")
    disks = []
    for disk in root.findall("devices/disk"):
        if disk.get("device", "disk") != "disk":
            continue
        source = disk.find("source")
        if source is not None:
            disks.append(source.get("file") or source.get("dev") or source.get("name") or "")
    return DomainFacts(
        name=root.findtext("name", ""),
        uuid=root.findtext("uuid", ""),
        domain_type=root.get("type", ""),
        os_type=(os_type.text or "").strip() if os_type is not None else "",
        memory_mib=_mib(memory),
        vcpus=int(root.findtext("vcpu", "1") or 1),
        arch=os_type.get("arch", "x86_64") if os_type is not None else "x86_64",
        firmware="uefi" if efi else "bios",
        macs=tuple(m.get("address", "") for m in root.findall("devices/interface/mac")),
        disks=tuple(d for d in disks if d),
        interfaces=tuple(ET.tostring(i, encoding="unicode").strip()
                         for i in root.findall("devices/interface")),
        console_log=console.get("path") if console is not None else None,
    )


def without_image(xml: str) -> str:
    """The domain's XML with no disk and no direct kernel: a machine with nothing deployed."""
    root = ET.fromstring(xml)
    root.attrib.pop("id", None)
    devices = root.find("devices")
    if devices is not None:
        for disk in devices.findall("disk"):
            if disk.get("device", "disk") == "disk":
                devices.remove(disk)
    os_element = root.find("os")
    if os_element is not None:
        for tag in ("kernel", "initrd", "cmdline"):
            for element in os_element.findall(tag):
                os_element.remove(element)
        os_type = (os_element.findtext("type") or "").strip()
        if root.get("type") == "xen" and os_type in ("xen", "linux", "xenpvh"):
            if root.find("bootloader") is None:
                bootloader = ET.Element("bootloader")
                bootloader.text = PYGRUB
                root.insert(list(root).index(os_element), bootloader)
        elif os_type == "hvm" and os_element.find("boot") is None:
            ET.SubElement(os_element, "boot", dev="hd")
    return ET.tostring(root, encoding="unicode")


def resized(xml: str, memory_mib: int, vcpus: int) -> str:
    """The domain's XML with ``memory_mib`` of memory and ``vcpus`` virtual CPUs."""
    root = ET.fromstring(xml)
    for tag in ("memory", "currentMemory"):
        element = root.find(tag)
        if element is not None:
            element.text, element.attrib = str(memory_mib), {"unit": "MiB"}
    vcpu = root.find("vcpu")
    if vcpu is None:
        vcpu = ET.SubElement(root, "vcpu")
    vcpu.text = str(vcpus)
    vcpu.attrib.pop("current", None)
    return ET.tostring(root, encoding="unicode")


def _mib(memory: ET.Element | None) -> int:
    if memory is None or not (memory.text or "").strip():
        return 0
    unit = memory.get("unit", "KiB").lower()
    return int(int(memory.text.strip()) * _KIB_PER_UNIT.get(unit, 1) // 1024)
