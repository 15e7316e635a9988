"""Our OVF descriptor (an OVF 1.x envelope, as VMware's and VirtualBox's tools read it).

One virtual system per image: its CPUs and memory from the hardware profile, an LSI Logic SCSI
controller with one disk per volume (stream-optimized VMDKs), the firmware as VMware's
``vmw:Config`` when it is UEFI, the software profile in ``OperatingSystemSection``, and the
Encompass section (:mod:`.metadata`). The text is written here rather than by ElementTree so
that the OVF namespace is the default one and the CIM elements come in the order their schema
sets (alphabetical), as strict readers want.
"""

from __future__ import annotations

from collections.abc import Sequence
from xml.sax.saxutils import escape, quoteattr

import attrs

from ..model import HardwareProfile, SoftwareProfile
from . import names
from .metadata import SCHEMA, Carried, encode


@attrs.frozen
class DiskFile:
    """One disk of the package: its file's name and size, its virtual size (capacity)."""

    href: str
    size: int
    capacity: int


class _Text:
    """An indented XML text being written."""

    def __init__(self) -> None:
        self.lines = ['<?xml version="1.0" encoding="UTF-8"?>']
        self.depth = 0

    def open(self, tag: str, **attributes: object) -> None:
        self.lines.append(f"{'  ' * self.depth}<{tag}{_attributes(attributes)}>")
        self.depth += 1

    def close(self, tag: str) -> None:
        self.depth -= 1
        self.lines.append(f"{'  ' * self.depth}</{tag}>")

    def leaf(self, tag: str, text: object | None = None, **attributes: object) -> None:
        pad = "  " * self.depth
        if text is None:
            self.lines.append(f"{pad}<{tag}{_attributes(attributes)}/>")
        else:
            self.lines.append(f"{pad}<{tag}{_attributes(attributes)}>{escape(str(text))}</{tag}>")


def _attributes(attributes: dict[str, object]) -> str:
    # Python names cannot hold ':'; "ovf_id" stands for "ovf:id", "xmlns_ovf" for "xmlns:ovf".
    return "".join(f" {key.replace('_', ':', 1)}={quoteattr(str(value))}"
                   for key, value in attributes.items() if value is not None)


def _os_section(software: SoftwareProfile, hardware: HardwareProfile) -> tuple[int, str]:
    """The CIM operating system number and VMware's guest id that fit the profiles."""
    wide = hardware.arch in ("x86_64", "aarch64", "amd64")
    text = f"{software.os} {software.description}".lower()
    if any(word in text for word in ("linux", "debian", "ubuntu", "centos", "fedora", "rhel", "suse")):
        return (101, "otherLinux64Guest") if wide else (36, "otherLinuxGuest")
    return (102, "otherGuest64") if wide else (1, "otherGuest")


def descriptor(name: str, hardware: HardwareProfile, software: SoftwareProfile,
               disks: Sequence[DiskFile], carried: Carried) -> bytes:
    """The descriptor of a package holding ``disks`` for image ``name``."""
    out = _Text()
    namespaces = {f"xmlns_{prefix}": uri for prefix, uri in names.PREFIXES.items()}
    out.open("Envelope", xmlns=names.OVF1, **namespaces, ovf_version="1.1")
    out.open("References")
    for number, disk in enumerate(disks):
        out.leaf("File", ovf_href=disk.href, ovf_id=f"file{number}", ovf_size=disk.size)
    out.close("References")
    out.open("DiskSection")
    out.leaf("Info", "Virtual disk information")
    for number, disk in enumerate(disks):
        # Capacity in bytes, said so: a missing unit is read as KB by some readers.
        out.leaf("Disk", ovf_capacity=disk.capacity, ovf_capacityAllocationUnits="byte",
                 ovf_diskId=f"vmdisk{number}", ovf_fileRef=f"file{number}", ovf_format=names.VMDK_STREAM)
    out.close("DiskSection")
    out.open("VirtualSystem", ovf_id=name)
    out.leaf("Info", "A virtual machine made from Encompass image " + name)
    out.leaf("Name", name)
    os_id, guest = _os_section(software, hardware)
    out.open("OperatingSystemSection", ovf_id=os_id, vmw_osType=guest)
    out.leaf("Info", "The kind of installed guest operating system")
    description = " ".join(x for x in (software.os, software.version) if x)
    if description:
        out.leaf("Description", description)
    out.close("OperatingSystemSection")
    _hardware(out, name, hardware, disks)
    _encompass(out, name, carried)
    out.close("VirtualSystem")
    out.close("Envelope")
    return ("\n".join(out.lines) + "\n").encode()


def _hardware(out: _Text, name: str, hardware: HardwareProfile, disks: Sequence[DiskFile]) -> None:
    out.open("VirtualHardwareSection")
    out.leaf("Info", "Virtual hardware requirements")
    out.open("System")
    out.leaf("vssd:ElementName", "Virtual Hardware Family")
    out.leaf("vssd:InstanceID", 0)
    out.leaf("vssd:VirtualSystemIdentifier", name)
    out.leaf("vssd:VirtualSystemType", "vmx-10")
    out.close("System")
    _item(out, AllocationUnits="hertz * 10^6", Description="Number of Virtual CPUs",
          ElementName=f"{hardware.cpus} virtual CPU(s)", InstanceID=1, ResourceType=names.PROCESSOR,
          VirtualQuantity=hardware.cpus)
    _item(out, AllocationUnits="byte * 2^20", Description="Memory Size",
          ElementName=f"{hardware.memory_mib}MB of memory", InstanceID=2, ResourceType=names.MEMORY,
          VirtualQuantity=hardware.memory_mib)
    _item(out, Address=0, Description="SCSI Controller", ElementName="SCSI Controller 0", InstanceID=3,
          ResourceSubType="lsilogic", ResourceType=names.SCSI_CONTROLLER)
    for number, _disk in enumerate(disks):
        _item(out, AddressOnParent=number, ElementName=f"Hard Disk {number + 1}",
              HostResource=f"ovf:/disk/vmdisk{number}", InstanceID=4 + number, Parent=3,
              ResourceType=names.DISK)
    if hardware.firmware == "uefi":
        out.leaf("vmw:Config", ovf_required="false", vmw_key="firmware", vmw_value="efi")
    out.close("VirtualHardwareSection")


def _item(out: _Text, **fields: object) -> None:
    out.open("Item")
    for field in sorted(fields):  # the CIM schema's sequence is alphabetical
        out.leaf(f"rasd:{field}", fields[field])
    out.close("Item")


def _encompass(out: _Text, name: str, carried: Carried) -> None:
    out.open("enc:EncompassSection", ovf_required="false", enc_schema=SCHEMA)
    out.leaf("Info", f"Encompass metadata of image {name}: hardware and software profiles, "
             "customization items, lineage and versions, non-secret inputs")
    out.leaf("enc:Image", encode(carried.image), enc_role="image")
    if carried.master is not None:
        out.leaf("enc:Image", encode(carried.master), enc_role="master")
    for ancestor in carried.ancestors:
        out.leaf("enc:Image", encode(ancestor), enc_role="ancestor")
    if carried.history:
        out.leaf("enc:History", encode(list(carried.history)))
    out.close("enc:EncompassSection")
