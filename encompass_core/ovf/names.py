"""The XML namespaces of OVF descriptors and the CIM numbers their hardware items use."""

from __future__ import annotations

OVF1 = "http://schemas.dmtf.org/ovf/envelope/1"
OVF2 = "http://schemas.dmtf.org/ovf/envelope/2"
RASD = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
VSSD = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData"
CIM = "http://schemas.dmtf.org/wbem/wscim/1/common"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
VMW = "http://www.vmware.com/schema/ovf"
VBOX = "http://www.virtualbox.org/ovf/machine"
#: Ours: the section carrying an image's Encompass metadata (``ovf:required="false"``, so any
#: other tool may skip it).
ENC = "urn:encompass:ovf:1"

PREFIXES = {"ovf": OVF1, "rasd": RASD, "vssd": VSSD, "cim": CIM, "xsi": XSI, "vmw": VMW, "enc": ENC}

#: The ``ovf:format`` of a stream-optimized VMDK (VMware's URI, which every tool uses).
VMDK_STREAM = "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"
#: The only disk formats imported: single-file sparse VMDKs (QEMU reads both; neither can name
#: another file, which a flat or split VMDK's text descriptor could).
VMDK_FORMATS = {VMDK_STREAM: "streamOptimized",
                "http://www.vmware.com/interfaces/specifications/vmdk.html#sparse": "monolithicSparse",
                "http://www.vmware.com/specifications/vmdk.html#sparse": "monolithicSparse"}

# CIM_ResourceAllocationSettingData.ResourceType values.
PROCESSOR = 3
MEMORY = 4
IDE_CONTROLLER = 5
SCSI_CONTROLLER = 6
ETHERNET = 10
DISK = 17
OTHER_STORAGE = 20  # what VirtualBox calls its SATA (AHCI) controller


def tag(namespace: str, local: str) -> str:
    """ElementTree's name of ``local`` in ``namespace``."""
    return f"{{{namespace}}}{local}"


def local(name: str) -> str:
    """The local part of an ElementTree name (``{uri}Item`` -> ``Item``)."""
    return name.rpartition("}")[2]
