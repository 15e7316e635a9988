"""Reading an OVF descriptor: ours, VMware's, VirtualBox's, any OVF 1.x or 2.x envelope.

What Encompass needs of a package is its disks (in the order the virtual machine attaches
them), a hardware profile (CPUs, memory, firmware, architecture) and a software profile, plus
the Encompass section when the package is ours. Foreign descriptors are read from the standard
``VirtualHardwareSection`` items first, then from the vendors' extensions: VMware's
``vmw:Config``/``vmw:ExtraConfig`` and ``vmw:osType``, VirtualBox's ``vbox:Machine``.
Anything a disk points at is checked (a file of the package, a supported format) before any
byte of it is read.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

import attrs

from ..errors import InvalidInput, NotSupported
from ..model import HardwareProfile, SoftwareProfile
from . import names
from .metadata import SCHEMA, Carried, decode
from .safexml import parse


@attrs.frozen
class DiskRef:
    """A disk the virtual system uses: its package file, format URI and virtual size."""

    disk_id: str
    href: str
    capacity: int  # bytes
    format: str  # the ovf:format URI
    file_size: int | None = None  # ovf:size of its File, when given


@attrs.frozen
class Descriptor:
    """What a descriptor says, as far as Encompass is concerned."""

    name: str
    producer: str  # encompass | vmware | virtualbox | ovf
    ovf_version: int  # 1 or 2 (the envelope's namespace)
    disks: tuple[DiskRef, ...]
    hardware: HardwareProfile
    software: SoftwareProfile
    carried: Carried | None = None


def read(data: bytes, where: str) -> Descriptor:
    """Parse descriptor ``data`` (``where`` names it in errors)."""
    root = parse(data, where)
    namespace = root.tag[1:].partition("}")[0] if root.tag.startswith("{") else ""
    if names.local(root.tag) != "Envelope" or namespace not in (names.OVF1, names.OVF2):
        raise InvalidInput(f"{where} is not an OVF descriptor (its root is {names.local(root.tag)!r} "
                           f"in namespace {namespace or 'none'!r}, not an OVF 1.x or 2.x Envelope)")
    ovf = _Names(namespace)
    systems = [e for e in root.iter(ovf("VirtualSystem"))]
    if not systems:
        raise InvalidInput(f"{where} describes no VirtualSystem")
    if len(systems) > 1:
        raise NotSupported(f"{where} describes {len(systems)} virtual systems (a vApp); Encompass "
                           "imports packages of one virtual system")
    system = systems[0]
    name = (system.findtext(ovf("Name")) or system.get(ovf.attr("id")) or "").strip()
    files = {f.get(ovf.attr("id")): f for f in root.iter(ovf("File"))}
    disks = _disks(root, system, ovf, files, where)
    carried = _carried(system, where) or _carried(root, where)
    hardware, producer = _hardware(system, ovf, where)
    if carried is not None:
        producer = "encompass"
    return Descriptor(name=name, producer=producer, ovf_version=1 if namespace == names.OVF1 else 2,
                      disks=disks, hardware=hardware, software=_software(system, ovf), carried=carried)


class _Names:
    """Element and attribute names in the envelope's OVF namespace."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace

    def __call__(self, local: str) -> str:
        return names.tag(self.namespace, local)

    def attr(self, local: str) -> str:
        return names.tag(self.namespace, local)


# -- disks ----------------------------------------------------------------------------------

_DISK_REF = re.compile(r"^(?:ovf:)?/disk/(?P<id>.+)$")


def _disks(root: ET.Element, system: ET.Element, ovf: _Names, files: dict, where: str
           ) -> tuple[DiskRef, ...]:
    declared = {}
    for disk in root.iter(ovf("Disk")):
        disk_id = disk.get(ovf.attr("diskId"), "")
        file_ref = disk.get(ovf.attr("fileRef"))
        if file_ref is None:
            raise NotSupported(f"{where}: disk '{disk_id}' has no file (an empty disk to be made "
                               "on deployment); Encompass imports disks with content")
        file = files.get(file_ref)
        if file is None:
            raise InvalidInput(f"{where}: disk '{disk_id}' names file '{file_ref}', which References "
                               "does not list")
        fmt = disk.get(ovf.attr("format"), "")
        if fmt not in names.VMDK_FORMATS:
            raise NotSupported(f"{where}: disk '{disk_id}' is in format {fmt or 'unknown'!r}; Encompass "
                               "imports stream-optimized or sparse VMDK disks")
        size = file.get(ovf.attr("size"))
        declared[disk_id] = DiskRef(
            disk_id=disk_id, href=check_href(file.get(ovf.attr("href"), ""), where), format=fmt,
            capacity=_capacity(disk, ovf, where), file_size=int(size) if size and size.isdigit() else None)
    if not declared:
        raise InvalidInput(f"{where} holds no disks")
    # The order the virtual machine attaches them: controller by controller, then by address.
    items = _items(system)
    controllers = {i.get("InstanceID"): n for n, i in enumerate(items)
                   if i.get("ResourceType") in ("5", "6", "20")}
    attached = []
    for item in items:
        match = _DISK_REF.match(item.get("HostResource", ""))
        if item.get("ResourceType") == str(names.DISK) and match and match["id"] in declared:
            address = item.get("AddressOnParent", "0")
            attached.append(((controllers.get(item.get("Parent"), 99),
                              int(address) if address.isdigit() else 99), match["id"]))
    order = [disk_id for _key, disk_id in sorted(attached)]
    order += [disk_id for disk_id in declared if disk_id not in order]
    return tuple(declared[disk_id] for disk_id in order)


def check_href(href: str, where: str) -> str:
    """A file reference of the package, refused when it could lead outside it."""
    parts = href.split("/")
    if (not href or "://" in href or href.startswith("/") or "\\" in href or ".." in parts
            or "" in parts or "\0" in href):
        raise InvalidInput(f"{where}: refused file reference {href!r}: it leads outside the package "
                           "(only relative names inside it are read)")
    return href


def _capacity(disk: ET.Element, ovf: _Names, where: str) -> int:
    raw = disk.get(ovf.attr("capacity"), "")
    if not raw.isdigit():
        raise InvalidInput(f"{where}: disk '{disk.get(ovf.attr('diskId'))}' has capacity {raw!r}, "
                           "not a number")
    return int(raw) * units(disk.get(ovf.attr("capacityAllocationUnits")) or "byte", where)


_UNIT_WORDS = {"byte": 1, "bytes": 1, "kilobytes": 1 << 10, "kb": 1 << 10, "megabytes": 1 << 20,
               "mb": 1 << 20, "gigabytes": 1 << 30, "gb": 1 << 30, "terabytes": 1 << 40}


def units(text: str, where: str) -> int:
    """The bytes of one unit in DSP0004's programmatic units (``byte * 2^20``, ``MegaBytes``)."""
    factor = 1
    for part in text.replace(" ", "").lower().split("*"):
        if part in _UNIT_WORDS:
            factor *= _UNIT_WORDS[part]
        elif re.fullmatch(r"\d{1,4}\^\d{1,2}", part):
            base, power = part.split("^")
            factor *= int(base) ** int(power)
        elif part.isdigit() and len(part) <= 12:
            factor *= int(part)
        else:
            raise InvalidInput(f"{where}: unknown allocation unit {text!r}")
    if factor > 1 << 50:  # a petabyte per unit: no real descriptor says that
        raise InvalidInput(f"{where}: allocation unit {text!r} is out of range")
    return factor


# -- hardware -------------------------------------------------------------------------------


def _items(system: ET.Element) -> list[dict[str, str]]:
    """The items of the first VirtualHardwareSection as {local name: text}; OVF 2's
    ``StorageItem`` and ``EthernetPortItem`` too."""
    section = next((e for e in system if names.local(e.tag) == "VirtualHardwareSection"), None)
    if section is None:
        return []
    return [{names.local(f.tag): (f.text or "").strip() for f in item}
            for item in section if names.local(item.tag).endswith("Item")]


def _hardware(system: ET.Element, ovf: _Names, where: str) -> tuple[HardwareProfile, str]:
    """The hardware profile and who made the package (``vmware``, ``virtualbox`` or ``ovf``)."""
    cpus, memory_mib, firmware, extra = None, None, "bios", {}
    producer = "ovf"
    for item in _items(system):
        kind, quantity = item.get("ResourceType"), item.get("VirtualQuantity", "")
        if kind == str(names.PROCESSOR) and quantity.isdigit():
            cpus = int(quantity)
        elif kind == str(names.MEMORY) and quantity.isdigit():
            memory_mib = int(quantity) * units(item.get("AllocationUnits") or "byte * 2^20", where) >> 20
    section = next((e for e in system if names.local(e.tag) == "VirtualHardwareSection"), None)
    if section is not None:
        system_type = (section.findtext(f"{ovf('System')}/{names.tag(names.VSSD, 'VirtualSystemType')}")
                       or "").strip()
        if system_type:
            extra["virtual-system-type"] = system_type
        config = _vmware_config(section)
        if config or system_type.startswith("vmx-"):
            producer = "vmware"
        if config:
            extra["vmware-config"] = config
            firmware = "uefi" if config.get("firmware") == "efi" else firmware
    machine = system.find(names.tag(names.VBOX, "Machine"))
    if machine is not None:
        producer = "virtualbox"
        vbox_cpus, vbox_memory, vbox_uefi = _virtualbox(machine)
        cpus, memory_mib = cpus or vbox_cpus, memory_mib or vbox_memory
        firmware = "uefi" if vbox_uefi else firmware
    defaults = HardwareProfile()
    return HardwareProfile(memory_mib=memory_mib or defaults.memory_mib, cpus=cpus or defaults.cpus,
                           arch=_arch(system, ovf), firmware=firmware, extra=extra), producer


def _vmware_config(section: ET.Element) -> dict[str, str]:
    """VMware's ``vmw:Config`` and ``vmw:ExtraConfig`` entries of the hardware section."""
    config = {}
    for element in section:
        if element.tag in (names.tag(names.VMW, "Config"), names.tag(names.VMW, "ExtraConfig")):
            key = element.get(names.tag(names.VMW, "key"), "")
            # guestinfo.* carries a deployment's data (user data, passwords): not the image's.
            if key and not key.startswith("guestinfo."):
                config[key] = element.get(names.tag(names.VMW, "value"), "")
    return config


def _virtualbox(machine: ET.Element) -> tuple[int | None, int | None, bool]:
    """CPUs, memory (MiB) and whether the firmware is EFI, from VirtualBox's ``vbox:Machine``."""
    hardware = _child(machine, "Hardware")
    if hardware is None:
        return None, None, False
    cpu, memory, firmware = (_child(hardware, name) for name in ("CPU", "Memory", "Firmware"))
    count = cpu.get("count", "") if cpu is not None else ""
    ram = memory.get("RAMSize", "") if memory is not None else ""
    uefi = firmware is not None and firmware.get("type", "").upper().startswith("EFI")
    return (int(count) if count.isdigit() else None, int(ram) if ram.isdigit() else None, uefi)


def _child(parent: ET.Element, local: str) -> ET.Element | None:
    return next((e for e in parent if names.local(e.tag) == local), None)


def _os_types(system: ET.Element, ovf: _Names) -> tuple[str, str, str]:
    """(vmw:osType, vbox OSType, OperatingSystemSection's Description)."""
    section = system.find(ovf("OperatingSystemSection"))
    if section is None:
        return "", "", ""
    vbox = section.findtext(names.tag(names.VBOX, "OSType")) or ""
    machine = system.find(names.tag(names.VBOX, "Machine"))
    if not vbox and machine is not None:
        vbox = machine.get("OSType", "")
    return (section.get(names.tag(names.VMW, "osType"), ""), vbox.strip(),
            (section.findtext(ovf("Description")) or "").strip())


def _arch(system: ET.Element, ovf: _Names) -> str:
    vmware, vbox, _description = _os_types(system, ovf)
    guest = (vmware or vbox).lower()
    if "arm64" in guest or "aarch64" in guest:
        return "aarch64"
    if guest and "64" not in guest:
        return "i686"
    return "x86_64"


def _software(system: ET.Element, ovf: _Names) -> SoftwareProfile:
    vmware, vbox, description = _os_types(system, ovf)
    product = system.find(ovf("ProductSection"))
    extra: dict[str, Any] = {}
    if vmware:
        extra["vmware-os-type"] = vmware
    if vbox:
        extra["virtualbox-os-type"] = vbox
    version = ""
    text = description
    if product is not None:
        version = (product.findtext(ovf("Version")) or "").strip()
        text = (product.findtext(ovf("Product")) or "").strip() or description
    annotation = system.find(f"{ovf('AnnotationSection')}/{ovf('Annotation')}")
    if annotation is not None and (annotation.text or "").strip():
        text = (annotation.text or "").strip()
    os_name = (description or vbox or vmware).split()[0].lower() if (description or vbox or vmware) else ""
    return SoftwareProfile(os=os_name, version=version, description=text, extra=extra)


# -- ours ----------------------------------------------------------------------------------


def _carried(parent: ET.Element, where: str) -> Carried | None:
    section = parent.find(names.tag(names.ENC, "EncompassSection"))
    if section is None:
        return None
    schema = section.get(names.tag(names.ENC, "schema"), "1")
    if not schema.isdigit() or int(schema) > SCHEMA:
        raise NotSupported(f"{where} was written by a newer Encompass (metadata schema {schema}, this "
                           f"one reads {SCHEMA}); upgrade Encompass to import it")
    images = {"image": None, "master": None}
    ancestors = []
    for element in section.findall(names.tag(names.ENC, "Image")):
        role = element.get(names.tag(names.ENC, "role"), "image")
        doc = decode(element.text, where)
        if not isinstance(doc, dict):
            raise InvalidInput(f"{where}: the Encompass section is damaged (an image is not an object)")
        if role == "ancestor":
            ancestors.append(doc)
        elif role in images:
            images[role] = doc
    if images["image"] is None:
        raise InvalidInput(f"{where}: the Encompass section holds no image")
    history = decode(section.findtext(names.tag(names.ENC, "History")) or "[]", where)
    return Carried(image=images["image"], master=images["master"], ancestors=tuple(ancestors),
                   history=tuple(history if isinstance(history, list) else ()))
