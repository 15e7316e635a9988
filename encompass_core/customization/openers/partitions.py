"""Where a partition lies inside a raw disk image: MBR (primary and logical) or GPT tables.

Partitions are numbered as Linux numbers them: MBR primaries 1-4, logical partitions from 5
in the order of their extended boot records; GPT entries by their slot, from 1.
"""

from __future__ import annotations

import struct
from typing import BinaryIO

import attrs

from encompass_core.errors import InvalidInput, NotFound

_MBR_SIGNATURE = b"\x55\xaa"
_GPT_SIGNATURE = b"EFI PART"
_GPT_PROTECTIVE = 0xEE
_EXTENDED_TYPES = {0x05, 0x0F, 0x85}
_MAX_LOGICAL = 128  # a longer EBR chain is a loop in a corrupt table


@attrs.frozen
class Partition:
    """One partition: its Linux number and its extent in bytes from the image's start."""

    number: int
    offset: int
    size: int
    scheme: str  # "mbr" or "gpt"


def _read(stream: BinaryIO, offset: int, length: int) -> bytes:
    stream.seek(offset)
    return stream.read(length)


def _mbr_entries(sector: bytes) -> list[tuple[int, int, int]]:
    """(type, first LBA, sector count) of the four slots of an MBR or EBR sector."""
    entries = []
    for slot in range(4):
        raw = sector[446 + 16 * slot : 446 + 16 * (slot + 1)]
        kind = raw[4]
        start, count = struct.unpack_from("<II", raw, 8)
        entries.append((kind, start, count))
    return entries


def _gpt_partitions(stream: BinaryIO, sector_size: int) -> list[Partition]:
    header = _read(stream, sector_size, 92)
    entries_lba, entry_count, entry_size = struct.unpack_from("<QII", header, 72)
    if entry_size < 128 or entry_count > 4096:
        raise InvalidInput("the GPT header is corrupt (entry size or count out of range)")
    table = _read(stream, entries_lba * sector_size, entry_count * entry_size)
    found = []
    for index in range(entry_count):
        entry = table[index * entry_size : (index + 1) * entry_size]
        if len(entry) < 128 or entry[:16] == bytes(16):
            continue
        first, last = struct.unpack_from("<QQ", entry, 32)
        found.append(Partition(index + 1, first * sector_size, (last - first + 1) * sector_size, "gpt"))
    return found


def _mbr_partitions(stream: BinaryIO, mbr: bytes) -> list[Partition]:
    found = []
    extended_start = None
    for slot, (kind, start, count) in enumerate(_mbr_entries(mbr)):
        if kind == 0 or count == 0:
            continue
        if kind in _EXTENDED_TYPES:
            extended_start = start
            continue
        found.append(Partition(slot + 1, start * 512, count * 512, "mbr"))
    number = 5
    ebr_lba = extended_start
    while ebr_lba is not None and number < 5 + _MAX_LOGICAL:
        ebr = _read(stream, ebr_lba * 512, 512)
        if len(ebr) < 512 or ebr[510:512] != _MBR_SIGNATURE:
            break
        (kind, start, count), (next_kind, next_start, _), *_ = _mbr_entries(ebr)
        if kind and count:
            found.append(Partition(number, (ebr_lba + start) * 512, count * 512, "mbr"))
            number += 1
        next_lba = extended_start + next_start if next_kind in _EXTENDED_TYPES else None
        ebr_lba = next_lba if next_lba != ebr_lba else None
    return found


def list_partitions(image_path: str) -> list[Partition]:
    """The partitions of a raw disk image; an empty list when it has no partition table."""
    with open(image_path, "rb") as stream:
        mbr = _read(stream, 0, 512)
        if len(mbr) < 512 or mbr[510:512] != _MBR_SIGNATURE:
            return []
        for sector_size in (512, 4096):
            if _read(stream, sector_size, 8) == _GPT_SIGNATURE:
                return _gpt_partitions(stream, sector_size)
        if any(kind == _GPT_PROTECTIVE for kind, _, _ in _mbr_entries(mbr)):
            raise InvalidInput(f"'{image_path}' has a protective MBR but no readable GPT header")
        return _mbr_partitions(stream, mbr)


def find_partition(image_path: str, number: int) -> Partition:
    """The partition ``number`` (1-based) of a raw disk image, or a NotFound naming those it has."""
    partitions = list_partitions(image_path)
    for partition in partitions:
        if partition.number == number:
            return partition
    if not partitions:
        raise NotFound(
            f"partition {number} does not exist in '{image_path}': it has no MBR or GPT "
            "partition table; use the whole image (no partition number)"
        )
    numbers = ", ".join(str(partition.number) for partition in partitions)
    raise NotFound(
        f"partition {number} does not exist in '{image_path}' (it has partitions {numbers}); "
        "fix the volume's partition number"
    )
