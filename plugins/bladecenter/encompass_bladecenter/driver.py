"""The ``bladecenter`` platform driver: the blades of one chassis, through its Management
Module's SNMP agent (BLADE-MIB).

A blade is the machine ``PLATFORM-bladeN`` (N its slot). Discovery reads every blade's name,
power, health, VPD (serial, machine type and model, UUID), MACs, FC WWNs (host ports), and its
iSCSI initiator name where ``iscsi_initiator_format`` says how the blades' firmware names it.
A deploy takes the boot volume at LUN 0 (the pool maps it to the blade's host before), sets the
boot sequence to boot from the SAN, and power-cycles the blade; undeploy powers it off (the pool
then unmaps the volume). Physical machines are neither created nor destroyed.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import attrs

from encompass_core.config import Config, Section, secret
from encompass_core.contracts import Attachment, PlatformCapabilities, PlatformDriver
from encompass_core.errors import Conflict, InvalidInput, NotFound, NotSupported
from encompass_core.model import HardwareProfile, HostPort, Image, Machine

from .chassis import Blade, Chassis
from .snmp import Credentials, Runner, Target, check_credentials

_BLADE_NAME = re.compile(r"-blade(\d+)$")
#: Where each boot mode of the contract points a blade's first boot device.
BOOT_MODE_DEVICES = {"san": "hd0", "pxe": "network"}
_POLL = 0.25  # seconds between power-state reads while waiting for a change


def _safe(name: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-") or "chassis"


class BladeCenterPlatformDriver(PlatformDriver):
    """Blades of one BladeCenter chassis."""

    capabilities = PlatformCapabilities(kind="physical", attach_kinds=("iscsi", "fc"),
                                        boot_modes=("san", "pxe"), boot_device=("persistent",))

    def __init__(self, section: Section, config: Config | None = None) -> None:
        self.platform = section.name
        settings = section.settings
        self.target = Target(self.platform, str(settings.get("address", "")), int(settings.get("port", 161)),
                             float(settings.get("timeout", 5.0)), int(settings.get("retries", 1)))
        version = str(settings.get("version", "2c"))
        self._credentials = Credentials(
            version=version,
            community=secret(section, "community", config) if version == "2c" else None,
            user=settings.get("user"),
            auth_password=secret(section, "auth_password", config) if version == "3" else None,
            priv_password=secret(section, "priv_password", config) if version == "3" else None,
            auth_protocol=str(settings.get("auth_protocol", "SHA")),
            priv_protocol=str(settings.get("priv_protocol", "AES")))
        check_credentials(self._credentials, self.platform)
        if not self.target.address:
            raise InvalidInput(f"[platforms.{self.platform}] needs address = \"the MM's address\"")
        self.initiator_format = settings.get("iscsi_initiator_format")
        self.console_format = settings.get("console_log")
        self.power_timeout = float(settings.get("power_timeout", 60.0))
        self.hardware = HardwareProfile(memory_mib=int(settings.get("memory_mib", 512)),
                                        cpus=int(settings.get("cpus", 1)))
        self._runner = Runner()
        self._open: Chassis | None = None

    # -- the chassis -------------------------------------------------------------------------
    def chassis(self) -> Chassis:
        """A :class:`Chassis` for ``async with`` (one SNMP session)."""
        return Chassis(self.target, self._credentials)

    def _call(self, method: str, *args: Any) -> Any:
        """Call a :class:`Chassis` method on the driver's session (opened on first use)."""
        async def call() -> Any:
            if self._open is None:
                opened = self.chassis()
                await opened.__aenter__()
                self._open = opened
            return await getattr(self._open, method)(*args)

        return self._runner.run(call())

    def shutdown(self) -> None:
        """Close the SNMP session and its event loop."""
        opened, self._open = self._open, None
        self._runner.close(opened.__aexit__(None, None, None) if opened else None)

    def machine_name(self, slot: int) -> str:
        """The machine name of the blade in ``slot``."""
        return f"{_safe(self.platform)}-blade{slot}"

    def slot_of(self, machine: Machine) -> int:
        """The slot of a machine of this platform; :class:`NotFound` for another's."""
        found = _BLADE_NAME.search(machine.name)
        slot = machine.extra.get("slot") if machine.extra else None
        if slot is None and found and machine.name == self.machine_name(int(found.group(1))):
            slot = int(found.group(1))
        if machine.platform != self.platform or slot is None:
            raise NotFound(f"platform '{self.platform}' has no machine '{machine.name}' (its blades "
                           f"are {self.machine_name(1)} .. {self.machine_name(14)}): encompass discover")
        return int(slot)

    def _machine(self, blade: Blade) -> Machine:
        ports = [HostPort("fc", wwn) for wwn in blade.wwns]
        if self.initiator_format:
            ports.insert(0, HostPort("iscsi", self.initiator_format.format(
                slot=blade.slot, name=blade.name, serial=blade.serial.lower(), uuid=blade.uuid or "")))
        return Machine(
            name=self.machine_name(blade.slot), platform=self.platform, kind="physical",
            uuid=blade.uuid, power=blade.power if blade.power in ("on", "off") else "unknown",
            hardware=self.hardware, macs=blade.macs, host_ports=tuple(ports),
            extra={"slot": blade.slot, "driver": "bladecenter", "blade_name": blade.name,
                   "health": blade.health, "serial": blade.serial, "machine_type": blade.machine_type,
                   "model": blade.model, "boot_sequence": list(blade.boot_sequence)})

    # -- the contract ------------------------------------------------------------------------
    def discover(self) -> list[Machine]:
        return [self._machine(blade) for blade in self._call("blades")]

    def power_states(self) -> dict[str, str]:
        """Every blade's power state in one walk: ``{machine name: on | off | ...}``."""
        return {self.machine_name(slot): state for slot, state in self._call("power_states").items()}

    def _blade(self, machine: Machine) -> Blade:
        slot = self.slot_of(machine)
        try:
            return self._call("blade", slot)
        except NotFound:
            raise NotFound(f"platform '{self.platform}' has no machine '{machine.name}': slot {slot} "
                           "holds no blade (encompass discover)") from None

    def power(self, machine: Machine, action: str) -> Machine:
        if action not in ("on", "off", "reset"):
            raise InvalidInput(f"unknown power action '{action}': use on, off or reset")
        blade = self._blade(machine)
        if action == "reset":
            if blade.power == "on":
                self._call("restart", blade.slot)
            else:
                self._call("set_power", blade.slot, "on")  # a reset of a blade that is off starts it
            wanted = "on"
        elif blade.power != action:
            self._call("set_power", blade.slot, action)
            wanted = action
        else:
            return self._machine(blade)
        return self._machine(self._wait_for(blade.slot, wanted))

    def _wait_for(self, slot: int, wanted: str) -> Blade:
        deadline = time.monotonic() + self.power_timeout
        while True:
            power = self._call("power_state", slot)
            if power == wanted:
                return self._call("blade", slot)
            if time.monotonic() > deadline:
                raise Conflict(f"platform '{self.platform}': blade {slot} is still {power} "
                               f"{self.power_timeout:g} s after it was asked to be {wanted}; see "
                               "the MM's event log, or raise power_timeout")
            time.sleep(_POLL)

    def deploy(self, machine: Machine, image: Image, attachments: list[Attachment]) -> Machine:
        blade = self._blade(machine)
        for attachment in attachments:
            if attachment.kind not in self.capabilities.attach_kinds:
                raise NotSupported(f"platform '{self.platform}': a blade boots only from the SAN "
                                   f"(iscsi or fc), not from a {attachment.kind} attachment")
        boot = next((a for a in attachments if a.boot), None)
        if boot is None:
            raise InvalidInput(f"platform '{self.platform}': '{image.name}' has no boot volume")
        # The core asked the pool for LUN 0; the attachment says the number the blade really
        # sees (tgt keeps its LUN 0 for the controller: there it is 1). The HBA boots the first.
        initiator = boot.details.get("initiator") if boot.kind == "iscsi" else None
        ports = [p.address for p in self._machine(blade).host_ports if p.kind == "iscsi"]
        if initiator and initiator not in ports:
            raise Conflict(f"platform '{self.platform}': the boot LUN of '{image.name}' is mapped to "
                           f"initiator {initiator}, and blade {blade.slot} boots as "
                           f"{ports[0] if ports else 'no iSCSI initiator'}: set iscsi_initiator_format "
                           f"in [platforms.{self.platform}] and run encompass discover")
        device = "iscsi" if boot.kind == "iscsi" and not ports else BOOT_MODE_DEVICES["san"]
        self._call("set_boot_sequence", blade.slot, [device, "network"])
        if blade.power == "on":
            self._call("restart", blade.slot)  # boot anew, from the LUN now mapped
        else:
            self._call("set_power", blade.slot, "on")
        running = self._wait_for(blade.slot, "on")
        return attrs.evolve(self._machine(running), image=image.name,
                            disks=tuple(a.address for a in attachments))

    def undeploy(self, machine: Machine, image: Image) -> Machine:
        stopped = self.power(machine, "off")
        return attrs.evolve(stopped, image=None, disks=())

    def set_boot_device(self, machine: Machine, device: str, once: bool) -> Machine:
        if once:
            raise NotSupported(f"platform '{self.platform}': the MM sets a blade's boot sequence, "
                               "not a one-time boot device")
        if device not in self.capabilities.boot_modes:
            raise InvalidInput(f"platform '{self.platform}': boot device '{device}' is not one of "
                               f"{', '.join(self.capabilities.boot_modes)}")
        blade = self._blade(machine)
        first = BOOT_MODE_DEVICES[device]
        rest = [d for d in ("hd0", "network") if d != first]
        self._call("set_boot_sequence", blade.slot, [first, *rest])
        return self._machine(self._call("blade", blade.slot))

    def console_log(self, machine: Machine) -> Path | None:
        """Where the blade's serial console is captured (``console_log``, a path with
        ``{slot}``: what a serial-over-LAN logger such as conserver writes)."""
        if not self.console_format:
            return None
        return Path(self.console_format.format(slot=self.slot_of(machine), name=machine.name))
