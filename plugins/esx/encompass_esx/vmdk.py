"""VMDK descriptors of ESX's own disk layout: a small text descriptor (``NAME.vmdk``) naming a
flat extent (``NAME-flat.vmdk``) that holds the raw bytes, sector for sector.

This is the layout ESX keeps on VMFS and NFS datastores, so a raw volume uploaded as a flat
extent with its descriptor is a disk a VM opens as it is, and a flat extent downloaded is a raw
image the utility server's volume openers read.
"""

from __future__ import annotations

import re
import secrets

SECTOR = 512
_EXTENT = re.compile(r'^\s*RW\s+(\d+)\s+VMFS\s+"([^"]+)"', re.MULTILINE)


def flat_name(descriptor: str) -> str:
    """``vol0.vmdk`` → ``vol0-flat.vmdk`` (also for a path)."""
    return descriptor[: -len(".vmdk")] + "-flat.vmdk"


def sectors(size: int) -> int:
    return -(-size // SECTOR)


def descriptor(flat: str, size: int, adapter: str = "pvscsi") -> str:
    """The descriptor of a flat extent ``flat`` (its file name, beside it) of ``size`` bytes."""
    count = sectors(size)
    cylinders = max(1, count // (255 * 63))
    cid = secrets.token_hex(4)
    return (
        "# Disk DescriptorFile\n"
        "version=1\n"
        "encoding=\"UTF-8\"\n"
        f"CID={cid}\n"
        "parentCID=ffffffff\n"
        "createType=\"vmfs\"\n\n"
        "# Extent description\n"
        f"RW {count} VMFS \"{flat}\"\n\n"
        "# The Disk Data Base\n"
        "#DDB\n\n"
        f"ddb.adapterType = \"{adapter}\"\n"
        f"ddb.geometry.cylinders = \"{cylinders}\"\n"
        "ddb.geometry.heads = \"255\"\n"
        "ddb.geometry.sectors = \"63\"\n"
        "ddb.virtualHWVersion = \"13\"\n"
    )


def extent(text: str) -> tuple[int, str] | None:
    """The size in bytes and file name of a descriptor's flat extent, if it has one."""
    found = _EXTENT.search(text)
    if found is None:
        return None
    return int(found.group(1)) * SECTOR, found.group(2)


def renamed(text: str, flat: str) -> str:
    """The descriptor with its extent pointing at ``flat``."""
    return _EXTENT.sub(lambda m: m.group(0).replace(f'"{m.group(2)}"', f'"{flat}"'), text, count=1)
