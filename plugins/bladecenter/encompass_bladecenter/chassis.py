"""One chassis as its Management Module reports it over SNMP (asyncio): blades, power, restart,
boot sequence. The driver runs it from synchronous code; a poller (``benchmarks/power_poll.py``)
awaits it directly and polls many chassis at once::

    async with Chassis(target, credentials) as chassis:
        states = await chassis.power_states()   # {slot: "on" | "off" | ...}, one GETBULK
"""

from __future__ import annotations

import asyncio
import uuid as uuidlib
from collections.abc import Sequence
from typing import Any

import attrs

from encompass_core.errors import InvalidInput, NotFound

from . import oids
from .snmp import Credentials, SnmpSession, Target


@attrs.frozen
class Blade:
    """One slot of the chassis as the MM reports it."""

    slot: int
    exists: bool
    name: str = ""
    power: str = "unknown"  # on, off, standby, hibernate, unknown
    health: str = "unknown"
    serial: str = ""
    machine_type: str = ""
    model: str = ""
    uuid: str | None = None
    macs: tuple[str, ...] = ()
    wwns: tuple[str, ...] = ()
    boot_sequence: tuple[str, ...] = ()


def normalize_uuid(text: str) -> str | None:
    """The MM writes a UUID as 32 hex digits, sometimes grouped with spaces or dashes."""
    digits = "".join(ch for ch in text if ch not in " -")
    try:
        return str(uuidlib.UUID(hex=digits))
    except ValueError:
        return None


def normalize_mac(text: str) -> str | None:
    digits = "".join(ch for ch in text.lower() if ch in "0123456789abcdef")
    if len(digits) != 12 or digits == "0" * 12:
        return None  # "not available" reads as zeros or text
    return ":".join(digits[i:i + 2] for i in range(0, 12, 2))


def normalize_wwn(text: str) -> str | None:
    digits = "".join(ch for ch in text.lower() if ch in "0123456789abcdef")
    return digits if len(digits) == 16 and digits != "0" * 16 else None


def _by_slot(found: dict[tuple[int, ...], Any], column: tuple[int, ...]) -> dict[int, Any]:
    return {oid[-1]: value for oid, value in found.items() if oid[:-1] == column}


class Chassis:
    """The blades of one chassis, through its MM's SNMP agent. ``async with`` opens the session."""

    def __init__(self, target: Target, credentials: Credentials, engine: Any = None) -> None:
        """``engine``: a pysnmp ``SnmpEngine`` to share between chassis polled together (one is
        made, and closed at the end, when none is given)."""
        self.target = target
        self._session = SnmpSession(target, credentials, engine)

    async def __aenter__(self) -> Chassis:
        await self._session.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._session.__aexit__(*exc)

    # -- reading -----------------------------------------------------------------------------
    async def power_states(self) -> dict[int, str]:
        """Every slot holding a blade and its power state, in one GETBULK: the installed-bays
        bitmap (``bistBladesInstalled``) and the power column, one row per slot. An MM without
        the bitmap costs a second GETBULK, of the blade-exists column."""
        found = await self._session.walk_columns([oids.BLADE_POWER_STATE], len(oids.SLOTS),
                                                 scalars=[oids.BLADES_INSTALLED])
        states = _by_slot(found[oids.BLADE_POWER_STATE], oids.BLADE_POWER_STATE)
        bitmap = str(found[oids.BLADES_INSTALLED].get((*oids.BLADES_INSTALLED, 0), ""))
        if bitmap and set(bitmap) <= {"0", "1"}:
            installed = {bay for bay, flag in enumerate(bitmap, start=1) if flag == "1"}
        else:
            exists = (await self._session.walk_columns([oids.BLADE_EXISTS], len(oids.SLOTS)))
            installed = {slot for slot, value in _by_slot(exists[oids.BLADE_EXISTS],
                                                          oids.BLADE_EXISTS).items() if value == 1}
        return {slot: oids.POWER_STATES.get(value, "unknown") for slot, value in states.items()
                if slot in installed}

    async def blades(self) -> list[Blade]:
        """Every blade present: name, power, health, VPD (serial, type, model, UUID), MACs,
        WWNs and boot sequence. The tables are walked at once."""
        answers = await asyncio.gather(
            *(self._session.walk(table) for table in (oids.REMOTE_CONTROL_ENTRY, oids.BOOT_SEQUENCE_ENTRY,
                                                      oids.BLADE_VPD_ENTRY, oids.MAC_ENTRY, oids.WWN_ENTRY)),
            return_exceptions=True)  # every walk ends before the first failure is raised
        for answer in answers:
            if isinstance(answer, BaseException):
                raise answer
        control, boot, vpd, macs, wwns = answers
        exists = _by_slot(control, oids.BLADE_EXISTS)
        found = []
        for slot in sorted(slot for slot, value in exists.items() if value == 1):
            def cell(table: dict, column: tuple[int, ...], default: Any = "", slot: int = slot) -> Any:
                return table.get((*column, slot), default)

            found.append(Blade(
                slot=slot, exists=True, name=str(cell(control, oids.BLADE_NAME)).strip(),
                power=oids.POWER_STATES.get(cell(control, oids.BLADE_POWER_STATE, 255), "unknown"),
                health=oids.HEALTH_STATES.get(cell(control, oids.BLADE_HEALTH, 0), "unknown"),
                serial=str(cell(vpd, oids.VPD_SERIAL)).strip(),
                machine_type=str(cell(vpd, oids.VPD_MACHINE_TYPE)).strip(),
                model=str(cell(vpd, oids.VPD_MACHINE_MODEL)).strip(),
                uuid=normalize_uuid(str(cell(vpd, oids.VPD_UUID))),
                macs=tuple(mac for column in oids.MAC_COLUMNS
                           if (mac := normalize_mac(str(cell(macs, column)))) is not None),
                wwns=_wwns_of(wwns, slot),
                boot_sequence=tuple(oids.BOOT_DEVICES.get(cell(boot, column, 255), "not-available")
                                    for column in oids.BOOT_SEQUENCE
                                    if (*column, slot) in boot),
            ))
        return found

    async def power_state(self, slot: int) -> str:
        """The power state of the blade in ``slot`` (one GET)."""
        found = await self._session.get([oids.column(oids.BLADE_POWER_STATE, slot)])
        return oids.POWER_STATES.get(next(iter(found.values())), "unknown")

    async def blade(self, slot: int) -> Blade:
        """The blade in ``slot``; :class:`NotFound` when the slot is empty or not there."""
        for blade in await self.blades():
            if blade.slot == slot:
                return blade
        raise NotFound(f"platform '{self.target.platform}': slot {slot} of the chassis at "
                       f"{self.target.where} holds no blade")

    # -- changing ----------------------------------------------------------------------------
    async def set_power(self, slot: int, action: str) -> None:
        """``on``, ``off`` or ``softoff`` (powerOnOffBlade)."""
        await self._session.set(oids.column(oids.POWER_ON_OFF, slot), oids.POWER_SET[action])

    async def restart(self, slot: int) -> None:
        """Restart the blade (restartBlade: execute)."""
        await self._session.set(oids.column(oids.RESTART, slot), oids.RESTART_EXECUTE)

    async def set_boot_sequence(self, slot: int, devices: Sequence[str]) -> None:
        """Boot sequence 1..4 of the blade (names of :data:`oids.BOOT_VALUES`; the rest
        ``none``)."""
        unknown = [device for device in devices if device not in oids.BOOT_VALUES]
        if unknown or len(devices) > len(oids.BOOT_SEQUENCE):
            raise InvalidInput(f"a boot sequence holds up to 4 of {', '.join(oids.BOOT_VALUES)}; "
                               f"got {', '.join(devices)}")
        wanted = [*devices, *["none"] * (len(oids.BOOT_SEQUENCE) - len(devices))]
        for column, device in zip(oids.BOOT_SEQUENCE, wanted, strict=True):
            await self._session.set(oids.column(column, slot), oids.BOOT_VALUES[device])


def _wwns_of(table: dict[tuple[int, ...], Any], slot: int) -> tuple[str, ...]:
    """The WWNs (type wwn) of the blade in ``slot`` and of its expansion cards."""
    found = []
    rows = {oid[-1] for oid in table if oid[:-1] == oids.WWN_TYPE}
    for row in sorted(rows):
        bay = str(table.get((*oids.WWN_BLADE_BAY, row), "")).strip()
        if table.get((*oids.WWN_TYPE, row)) != 1 or bay.lstrip("0") != str(slot):
            continue
        for column in oids.WWN_COLUMNS:
            wwn = normalize_wwn(str(table.get((*column, row), "")))
            if wwn and wwn not in found:
                found.append(wwn)
    return tuple(found)
