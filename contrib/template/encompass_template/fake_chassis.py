"""A fake management controller to develop the platform driver against: a chassis of physical
machines (blades, servers behind a BMC) that power on and off and boot what they are told.

Its state lives in ``chassis.json`` in one directory, written atomically. Replace it with your
management interface's client (Redfish, SNMP, WS-Management...): the driver calls only these
methods, each a request a real controller answers. A directory that does not exist is a
controller that does not answer (:class:`ChassisUnreachable`).
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from pathlib import Path
from typing import Any

STATE = "chassis.json"


class ChassisUnreachable(Exception):
    """The management controller does not answer."""


class NoSuchMachine(Exception):
    """The chassis has no machine of that name."""


class FakeChassis:
    """The client of one fake management controller at ``address`` (a directory)."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.root = Path(address)

    @classmethod
    def create(cls, address: str, names: list[str]) -> FakeChassis:
        """Make a chassis holding powered-off machines ``names`` (what a lab does once)."""
        Path(address).mkdir(parents=True, exist_ok=True)
        chassis = cls(address)
        machines = {}
        for slot, name in enumerate(names, start=1):
            machines[name] = {
                "uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{address}/{name}")),
                "serial": f"FAKE{slot:04d}", "macs": [f"52:54:00:00:00:{slot:02x}"],
                "cpus": 2, "memory_mib": 4096, "power": "off", "boot_once": None, "disks": [],
            }
        chassis._save(machines)
        return chassis

    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            return json.loads((self.root / STATE).read_text())
        except FileNotFoundError as exc:
            raise ChassisUnreachable(f"no management controller answers at {self.address}") from exc

    def _save(self, machines: dict[str, dict[str, Any]]) -> None:
        fd, temp = tempfile.mkstemp(dir=self.root, prefix=".chassis-")
        with os.fdopen(fd, "w") as out:
            json.dump(machines, out, indent=1, sort_keys=True)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, self.root / STATE)

    def _change(self, name: str, **values: Any) -> dict[str, Any]:
        machines = self._load()
        if name not in machines:
            raise NoSuchMachine(name)
        machines[name].update(values)
        self._save(machines)
        return machines[name]

    def machines(self) -> dict[str, dict[str, Any]]:
        """Every machine: ``{name: {"uuid", "serial", "macs", "cpus", "memory_mib", "power",
        "boot_once", "disks"}}``."""
        return self._load()

    def set_power(self, name: str, state: str) -> dict[str, Any]:
        """``on`` (booting ``boot_once`` if set, which is then cleared) or ``off``."""
        machine = self.machines().get(name)
        if machine is None:
            raise NoSuchMachine(name)
        if state == "on" and machine["power"] == "off":
            return self._change(name, power="on", boot_once=None)
        return self._change(name, power=state)

    def set_boot_once(self, name: str, device: str) -> dict[str, Any]:
        """Boot ``device`` (``san``, ``pxe``) at the next power-on only."""
        return self._change(name, boot_once=device)

    def set_disks(self, name: str, disks: list[str]) -> dict[str, Any]:
        """The volumes the machine's storage adapter logs in to (its boot LUN first)."""
        return self._change(name, disks=disks)
