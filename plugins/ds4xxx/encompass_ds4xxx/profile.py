"""Reading SMcli's output: the storage subsystem profile (``show storageSubsystem;``) and the
volume copy pairs (``show volumeCopy ...;``).

The parse is by labelled lines (``Logical Drive name: x``, ``Capacity: 8.000 MB``), in the
section they appear under (``STANDARD LOGICAL DRIVES-----``), so blank lines, column widths,
extra fields and sections the driver does not know change nothing. A field missing where the
driver needs it is a :class:`~encompass_core.errors.DriverError` naming it.
"""

from __future__ import annotations

import re

import attrs

_SECTION = re.compile(r"^(\S.*?)-{5,}\s*$")
_FIELD = re.compile(r"^\s+([A-Za-z][A-Za-z0-9 ()/.-]*?):\s*(.*?)\s*$")
_MAPPING_ROW = re.compile(r"^\s+(\S+)\s+(\d+)\s+(\S+)\s+(Host Group|Host)\s+(\S+)\s+(\S.*?)\s*$")
_ARRAY = re.compile(r"^\s+Array\s+(\S+)\s+\(RAID\s+(\S+)\)")
_UNITS = {"bytes": 0, "kb": 1, "mb": 2, "gb": 3, "tb": 4}


def parse_capacity(text: str) -> int:
    """``8.000 MB`` / ``1,024.000 GB`` / ``512 Bytes`` as bytes (units of 1024, as SMcli's)."""
    match = re.match(r"^\s*([0-9][0-9,]*(?:\.[0-9]+)?)\s*([A-Za-z]+)", text)
    if match is None or match.group(2).lower() not in _UNITS:
        raise ValueError(f"not a capacity: {text!r}")
    return round(float(match.group(1).replace(",", "")) * 1024 ** _UNITS[match.group(2).lower()])


@attrs.frozen
class Drive:
    """A logical drive: ``kind`` is ``standard``, ``flashcopy``, ``repository`` or ``other``."""

    label: str
    kind: str
    capacity: int
    wwn: str
    ssid: str = ""
    array: str = ""
    owner: str = ""
    base: str = ""  # a FlashCopy's (or repository's) base logical drive


@attrs.frozen
class Host:
    label: str
    ports: tuple[str, ...] = ()
    target: str = ""  # the iSCSI target serving this host's LUNs, when the subsystem says


@attrs.frozen
class Mapping:
    drive: str
    lun: int
    host: str


@attrs.frozen
class Profile:
    """What ``show storageSubsystem;`` says, as the driver needs it."""

    name: str
    wwn: str
    target_name: str
    portal: str
    free: dict[str, int]  # array number -> free bytes
    drives: dict[str, Drive]
    hosts: dict[str, Host]
    mappings: dict[str, Mapping]  # by drive label

    def host_with_port(self, identifiers: list[str]) -> Host | None:
        """The host owning one of these host port identifiers (initiator names, WWPNs)."""
        wanted = {identifier.lower() for identifier in identifiers}
        return next((h for h in self.hosts.values() if wanted & {p.lower() for p in h.ports}), None)

    def luns_of(self, host: str) -> dict[int, str]:
        return {m.lun: m.drive for m in self.mappings.values() if m.host == host}


@attrs.frozen
class CopyPair:
    """A volume copy pair: ``status`` as SMcli says it (In progress, Completed, Stopped, Failed)."""

    source: str
    target: str
    status: str
    percent: int


def _kind(section: str) -> str | None:
    title = section.upper()
    if "LOGICAL DRIVES" not in title:
        return None
    if "FLASHCOPY REPOSITORY" in title:
        return "repository"
    if "FLASHCOPY" in title:
        return "flashcopy"
    return "standard" if "STANDARD" in title else "other"


def parse_profile(output: str) -> Profile:
    """The profile from SMcli's output."""
    section = ""
    summary: dict[str, str] = {}
    free: dict[str, int] = {}
    drives: dict[str, Drive] = {}
    hosts: dict[str, Host] = {}
    mappings: dict[str, Mapping] = {}
    block: dict[str, str] | None = None  # the drive being read
    host: dict | None = None
    array: str | None = None

    def end_drive() -> None:
        nonlocal block
        if block is not None:
            drives[block["name"]] = _drive(block)
            block = None

    for line in output.splitlines():
        header = _SECTION.match(line)
        if header or line.strip() == "TOPOLOGY DEFINITIONS":
            end_drive()
            section = header.group(1) if header else "TOPOLOGY DEFINITIONS"
            continue
        kind = _kind(section)
        field = _FIELD.match(line)
        if kind is not None:
            if field and field.group(1) == "Logical Drive name":
                end_drive()
                block = {"name": field.group(2), "kind": kind}
            elif field and block is not None:
                block[field.group(1)] = field.group(2)
        elif section.startswith("MAPPINGS"):
            row = _MAPPING_ROW.match(line)
            if row and row.group(2).isdigit() and row.group(4) == "Host":
                mappings[row.group(1)] = Mapping(row.group(1), int(row.group(2)), row.group(5))
        elif section.startswith("ARRAYS"):
            found = _ARRAY.match(line)
            if found:
                array = found.group(1)
            elif field and array is not None and field.group(1) == "Free capacity":
                free[array] = parse_capacity(field.group(2))
        elif section == "TOPOLOGY DEFINITIONS" and field:
            name, value = field.groups()
            if name == "Host":
                host = {"label": value, "ports": [], "target": ""}
                hosts[value] = host  # type: ignore[assignment]
            elif host is not None and name == "Host port identifier":
                host["ports"].append(value)
            elif host is not None and name == "iSCSI target name":
                host["target"] = value
        elif field:
            summary.setdefault(field.group(1), field.group(2))
    end_drive()
    address = summary.get("IPv4 address", "")
    port = summary.get("TCP listening port", "3260")
    return Profile(
        name=summary.get("Storage Subsystem Name", ""),
        wwn=summary.get("Storage Subsystem world-wide identifier (ID)", ""),
        target_name=summary.get("iSCSI target name", ""),
        portal=f"{address}:{port}" if address else "",
        free=free,
        drives=drives,
        hosts={label: Host(label, tuple(h["ports"]), h["target"])  # type: ignore[index]
               for label, h in hosts.items()},
        mappings=mappings,
    )


def _drive(block: dict[str, str]) -> Drive:
    try:
        capacity = parse_capacity(block.get("Capacity", ""))
    except ValueError:
        capacity = 0
    owner = block.get("Current owner", "")
    return Drive(label=block["name"], kind=block["kind"], capacity=capacity,
                 wwn=block.get("Logical Drive ID", block.get("Logical Drive world-wide identifier", "")),
                 ssid=block.get("Subsystem ID (SSID)", ""), array=block.get("Associated array", ""),
                 owner=owner.rsplit(" ", 1)[-1] if owner else "",
                 base=block.get("Base logical drive", ""))


def parse_copies(output: str) -> list[CopyPair]:
    """The pairs of ``show volumeCopy ...;``."""
    pairs = []
    current: dict[str, str] | None = None
    for line in output.splitlines():
        field = _FIELD.match(line)
        if not field:
            continue
        name, value = field.groups()
        if name == "Copy pair":
            current = {}
            pairs.append(current)
        elif current is not None:
            current[name] = value
    result = []
    for pair in pairs:
        status = pair.get("Copy status", "")
        percent = re.search(r"(\d+)\s*%", pair.get("Percent complete", "") or status)
        result.append(CopyPair(source=pair.get("Source logical drive", ""),
                               target=pair.get("Target logical drive", ""),
                               status=status.split("(")[0].split(",")[0].strip(),
                               percent=int(percent.group(1)) if percent else 0))
    return result
