"""The lab chassis' Management Module: a net-snmp ``pass_persist`` program serving the
BLADE-MIB objects the driver uses, for a 14-slot chassis whose blades are lab machines
(:mod:`encompass_core.testing.lab`).

snmpd runs it as ``python -m encompass_bladecenter.lab_agent CHASSIS_DIR`` and talks to it over
stdin/stdout: ``PING`` → ``PONG``; ``get``/``getnext`` + OID → OID, type, value (or ``NONE``);
``set`` + OID + ``TYPE VALUE`` → ``DONE`` or an SNMP error name. A set of ``powerOnOffBlade``
powers the lab machine on or off, ``restartBlade`` resets it, ``bootSequence1..4`` becomes its
boot order (hard drives and iSCSI are its SAN LUN 0, the network its NIC). The chassis (which
slot holds which lab machine, names, boot sequences: the MM's NVRAM) is ``chassis.json`` in
CHASSIS_DIR; power states are read from the lab machines themselves. It never sees the
community: snmpd checks it.
"""

from __future__ import annotations

import bisect
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from encompass_core import rundir
from encompass_core.testing.lab import LabError, LabMachine

from . import oids

#: bootSequence values a lab blade boots from its SAN LUN 0 (it has no local disk).
SAN_DEVICES = {3, 4, 5, 6, 8, 9, 10}
#: pass_persist value types.
INTEGER, STRING = "integer", "string"
POWER = "power"  # a cell whose value is the lab machine's power state, read when asked


def lab_boot_order(sequence: list[int]) -> tuple[str, ...]:
    """The lab machine's boot order for a blade boot sequence."""
    order: list[str] = []
    for value in sequence:
        device = ("san" if value in SAN_DEVICES else "network" if value == 7
                  else "cd" if value == 2 else None)
        if device and device not in order:
            order.append(device)
    return tuple(order) or ("none",)


class ChassisAgent:
    """The chassis state and the object tree it serves."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.state_path = directory / "chassis.json"
        self._tree: dict[tuple[int, ...], tuple[str, Any]] | None = None
        self._order: list[tuple[int, ...]] = []
        self._stamp = 0

    # -- state -------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return json.loads(self.state_path.read_text())

    def save(self, state: dict[str, Any]) -> None:
        partial = self.state_path.with_suffix(".tmp")
        partial.write_text(json.dumps(state, indent=2, sort_keys=True))
        os.replace(partial, self.state_path)

    def log(self, line: str) -> None:
        with open(self.directory / "agent.log", "a", encoding="utf-8") as out:
            out.write(f"{time.strftime('%H:%M:%S')} {line}\n")

    # -- the tree ----------------------------------------------------------------------------
    def tree(self) -> dict[tuple[int, ...], tuple[str, Any]]:
        """Every object served, ``{oid: (type, value)}``; power cells hold the lab machine,
        read when asked (a guest that powers itself off is off at once)."""
        stamp = self.state_path.stat().st_mtime_ns
        if self._tree is None or stamp != self._stamp:
            self._tree, self._stamp = self._build(), stamp
            self._order = sorted(self._tree)
        return self._tree

    def _build(self) -> dict[tuple[int, ...], tuple[str, Any]]:
        state = self.state()
        tree: dict[tuple[int, ...], tuple[str, Any]] = {
            (*oids.BLADES_INSTALLED, 0): (STRING, "".join("1" if str(slot) in state["slots"] else "0"
                                                          for slot in oids.SLOTS))}
        for slot in oids.SLOTS:
            blade = state["slots"].get(str(slot))
            machine = LabMachine(blade["machine"]) if blade else None
            power = (POWER, machine) if machine else (INTEGER, 0)
            common = [(INTEGER, slot), (INTEGER, slot), (INTEGER, 1 if blade else 0), power,
                      (INTEGER, 1 if blade else 0), (STRING, blade["name"] if blade else "")]
            sequence = blade["boot"] if blade else [255, 255, 255, 255]
            for entry, extra in ((oids.REMOTE_CONTROL_ENTRY, []),
                                 (oids.BOOT_SEQUENCE_ENTRY, [(INTEGER, v) for v in sequence]),
                                 (oids.POWER_RESTART_ENTRY, [power, (INTEGER, 0)])):
                for number, cell in enumerate([*common, *extra], start=1):
                    tree[(*entry, number, slot)] = cell
            if machine is None:
                continue
            identity = machine.identity
            vpd = {1: (INTEGER, slot), 2: (STRING, f"{slot:02d}"), 3: (STRING, "IBM"),
                   6: (STRING, identity.serial), 7: (STRING, identity.product.split("-")[0]),
                   8: (STRING, _grouped(identity.uuid)), 12: (STRING, identity.product.split("-")[-1])}
            for number, cell in vpd.items():
                tree[(*oids.BLADE_VPD_ENTRY, number, slot)] = cell
            tree[(*oids.MAC_ENTRY, 1, slot)] = (INTEGER, slot)
            tree[(*oids.MAC_ENTRY, 2, slot)] = (STRING, identity.mac.upper())
        return tree

    # -- requests ----------------------------------------------------------------------------
    def get(self, oid: tuple[int, ...]) -> str:
        cell = self.tree().get(oid)
        return _answer(oid, cell) if cell else "NONE"

    def getnext(self, oid: tuple[int, ...]) -> str:
        tree = self.tree()
        position = bisect.bisect_right(self._order, oid)
        if position == len(self._order):
            return "NONE"
        nearest = self._order[position]
        return _answer(nearest, tree[nearest])

    def set(self, oid: tuple[int, ...], kind: str, value: str) -> str:
        table, slot = oid[:-1], oid[-1]
        if table not in (oids.POWER_ON_OFF, oids.RESTART, *oids.BOOT_SEQUENCE):
            return "not-writable"
        if kind != INTEGER:
            return "wrong-type"
        number = int(value)
        state = self.state()
        blade = state["slots"].get(str(slot))
        if blade is None:
            return "inconsistent-value"  # an empty slot
        machine = LabMachine(blade["machine"])
        try:
            if table == oids.POWER_ON_OFF:
                if number not in (0, 1, 2):
                    return "wrong-value"
                if number == 1:
                    machine.power_on()
                else:
                    machine.power_off()  # softoff too: a lab guest has no OS agent to ask
                self.log(f"slot {slot}: power {'on' if number == 1 else 'off'}")
            elif table == oids.RESTART:
                if number != oids.RESTART_EXECUTE:
                    return "wrong-value"
                machine.reset()
                self.log(f"slot {slot}: restart")
            else:
                if number not in oids.BOOT_DEVICES or number == 255:
                    return "wrong-value"
                position = oids.BOOT_SEQUENCE.index(table)
                sequence = list(blade["boot"])
                if number in sequence and number != 0:  # the MIB's rule: a duplicate is swapped
                    sequence[sequence.index(number)] = sequence[position]
                sequence[position] = number
                blade["boot"] = sequence
                self.save(state)
                machine.set_boot_order(lab_boot_order(sequence))
                self.log(f"slot {slot}: boot sequence {sequence}")
        except LabError as error:
            self.log(f"slot {slot}: {error}")
            return "inconsistent-value"
        return "DONE"


def _grouped(uuid: str) -> str:
    """A UUID as the MM prints it: 32 upper-case hex digits in groups of four."""
    digits = uuid.replace("-", "").upper()
    return " ".join(digits[i:i + 4] for i in range(0, 32, 4))


def _answer(oid: tuple[int, ...], cell: tuple[str, Any]) -> str:
    kind, value = cell
    if kind == POWER:
        kind, value = INTEGER, 1 if value.power_state() == "on" else 0
    return f".{oids.dotted(oid)}\n{kind}\n{value}"


def _parse(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.strip().strip(".").split(".") if part)


def serve(agent: ChassisAgent, lines: Any, out: Any) -> None:
    """Answer snmpd's requests until stdin closes."""
    def next_line() -> str | None:
        for line in lines:
            if line.strip():  # snmpd sends an extra blank line after each set
                return line.strip()
        return None

    while (command := next_line()) is not None:
        if command == "PING":
            reply = "PONG"
        elif command in ("get", "getnext", "set"):
            oid = _parse(next_line() or "")
            if command == "set":
                kind, _, value = (next_line() or "").partition(" ")
                reply = agent.set(oid, kind, value)
            elif oid[:len(oids.BLADE_CENTER)] != oids.BLADE_CENTER:
                reply = "NONE"
            else:
                reply = agent.get(oid) if command == "get" else agent.getnext(oid)
        else:
            reply = "NONE"
        out.write(reply + "\n")
        out.flush()


def main() -> None:
    directory = Path(sys.argv[1])
    rundir.use_home(directory)  # QEMUs it starts are recorded there and end with it
    agent = ChassisAgent(directory)
    agent.log("agent started")
    serve(agent, sys.stdin, sys.stdout)
    agent.log("agent stopped")


if __name__ == "__main__":
    main()
