"""The platform driver of encompass-redfish: the servers behind one Redfish service.

A Redfish service (a server's BMC, or a chassis manager holding several) lists ComputerSystems;
each is a physical machine. Discovery reads what identifies it (UUID, serial number, MACs),
its CPUs, memory and power; power and the one-time boot source go through the system's
``Reset`` action and ``Boot`` property. A deploy does not move disks: the pool mapped the
image's volumes to the machine's host ports (boot from SAN), so the driver boots the machine
once from its disk (or the network, or the BMC's virtual media) and powers it on.

Every method of :class:`~encompass_core.contracts.PlatformDriver` is here with the contract's
docstring. ``sushy`` is imported only when a request is made.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from encompass_core.contracts import Attachment, PlatformCapabilities, PlatformDriver
from encompass_core.errors import DriverError, InvalidInput, NotFound, NotSupported
from encompass_core.model import HardwareProfile, Image, Machine

from .bmc import Bmc

POWER_ACTIONS = ("on", "off", "reset")
#: The contract's boot modes and the Redfish ``BootSourceOverrideTarget`` each one is.
BOOT_TARGETS = {"disk": "Hdd", "san": "Hdd", "pxe": "Pxe", "media": "Cd"}
#: Seconds between two reads of a system's power state while waiting for it to change.
POLL_INTERVAL = 0.5


class RedfishPlatformDriver(PlatformDriver):
    """Physical servers managed through Redfish."""

    capabilities = PlatformCapabilities(kind="physical", attach_kinds=("iscsi", "fc"),
                                        boot_modes=("san", "disk", "pxe", "media"),
                                        boot_device=("once", "persistent"))

    def __init__(self, section: Any, config: Any) -> None:
        self.platform = section.name
        self.bmc = Bmc(section.name, section, config)
        self.power_timeout = float(section.settings.get("power_timeout", 120))
        self.only = tuple(section.settings.get("systems") or ())

    # -- reading the service -----------------------------------------------------------------
    def _systems(self) -> dict[str, Any]:
        """The systems this platform manages, by machine name (the system's Name, else its Id)."""
        found = {}
        for system in self.bmc.systems():
            name = system.name or system.identity
            if not self.only or name in self.only:
                found[name] = system
        return found

    def _system(self, machine: Machine, what: str) -> Any:
        system = self._systems().get(machine.name)
        if system is None:
            raise NotFound(f"platform '{self.platform}' has no system named '{machine.name}' "
                           f"(cannot {what}); see: encompass discover --platform {self.platform}")
        return system

    def _machine(self, name: str, system: Any) -> Machine:
        with self.bmc.asking(f"read system '{name}'"):
            system.refresh(force=True)
            power = {"On": "on", "Off": "off"}.get(_value(system.power_state), "unknown")
            memory_gib = getattr(system.memory_summary, "size_gib", None) or 0
            cpus = _cpu_count(system)
            macs = tuple(sorted(_macs(system)))
            boot = system.boot
            extra = {"serial": system.serial_number, "redfish_id": system.path,
                     "model": system.model, "manufacturer": system.manufacturer,
                     "boot_target": _value(getattr(boot, "target", None)),
                     "boot_enabled": _value(getattr(boot, "enabled", None))}
        return Machine(name=name, platform=self.platform, kind="physical", uuid=system.uuid,
                       hardware=HardwareProfile(memory_mib=int(memory_gib * 1024), cpus=cpus),
                       power=power, macs=macs,
                       extra={key: value for key, value in extra.items() if value is not None})

    def _wait_power(self, name: str, system: Any, wanted: str) -> Machine:
        """Poll until the system's power is ``wanted``: a BMC applies a reset when it can."""
        deadline = time.monotonic() + self.power_timeout
        while True:
            machine = self._machine(name, system)
            if machine.power == wanted:
                return machine
            if time.monotonic() > deadline:
                raise DriverError(f"platform '{self.platform}': system '{name}' is still "
                                  f"{machine.power} {self.power_timeout:.0f} s after being asked to "
                                  f"power {wanted} (power_timeout)")
            time.sleep(POLL_INTERVAL)

    # -- required ----------------------------------------------------------------------------
    def discover(self) -> list[Machine]:
        """The machines the platform really has, with the volumes each one uses (``disks``)."""
        return [self._machine(name, system) for name, system in sorted(self._systems().items())]

    def power(self, machine: Machine, action: str) -> Machine:
        """``on``, ``off`` or ``reset``; return the machine with its new power state."""
        if action not in POWER_ACTIONS:
            raise InvalidInput(f"power action '{action}': use one of {', '.join(POWER_ACTIONS)}")
        system = self._system(machine, f"power {action} '{machine.name}'")
        current = self._machine(machine.name, system).power
        reset = {"on": "On", "off": "ForceOff", "reset": "ForceRestart"}[action]
        if action == "reset" and current != "on":
            reset = "On"
        if (action, current) not in (("on", "on"), ("off", "off")):
            import sushy

            with self.bmc.asking(f"power {action} '{machine.name}'"):
                system.reset_system(sushy.ResetType(reset))
        return self._wait_power(machine.name, system, "off" if action == "off" else "on")

    def deploy(self, machine: Machine, image: Image, attachments: list[Attachment]) -> Machine:
        """Point the machine at the attached volumes (the one with ``boot`` set starts it) and
        boot it. A failure leaves the machine as it was."""
        foreign = sorted({a.kind for a in attachments} - set(self.capabilities.attach_kinds))
        if foreign:  # refused before the machine is touched
            raise NotSupported(f"platform '{self.platform}': its servers boot "
                               f"{', '.join(self.capabilities.attach_kinds)} volumes from their "
                               f"adapters, not {', '.join(foreign)}")
        if not any(a.boot for a in attachments):
            raise InvalidInput(f"platform '{self.platform}': none of the volumes of '{image.name}' "
                               "is the boot volume")
        system = self._system(machine, f"deploy '{image.name}'")
        before = self._machine(machine.name, system)
        mode = str(image.software.extra.get("boot_mode", "san"))
        if mode not in BOOT_TARGETS:
            raise InvalidInput(f"image '{image.name}' boots by '{mode}'; platform '{self.platform}' "
                               f"boots {', '.join(BOOT_TARGETS)}")
        try:
            self._set_boot(machine.name, system, BOOT_TARGETS[mode], once=True)
            return self.power(machine, "reset" if before.power == "on" else "on")
        except Exception:
            self._restore_boot(machine.name, system, before)
            raise

    def undeploy(self, machine: Machine, image: Image) -> Machine:
        """Power the machine off and take the image's volumes out of its definition. A
        machine already off, or already without them, is not an error."""
        # The volumes are the pool's to unmap (detach); a server keeps no definition of them.
        return self.power(machine, "off")

    # -- optional ----------------------------------------------------------------------------
    def console_log(self, machine: Machine) -> Path | None:
        """Where the machine's console output is kept, if anywhere."""
        return None

    def create_machine(self, name: str, image: Image) -> Machine:
        """Create a virtual machine fitting the image's hardware profile
        (``capabilities.create_machines``)."""
        raise NotSupported(f"platform '{self.platform}' cannot create machines (they are physical)")

    def destroy_machine(self, machine: Machine) -> None:
        """Remove a machine this platform created; a machine already gone is not an error."""
        raise NotSupported(f"platform '{self.platform}' cannot remove machines (they are physical)")

    def set_boot_device(self, machine: Machine, device: str, once: bool) -> Machine:
        """Boot ``device`` (one of ``capabilities.boot_modes``) next time only (``once``) or
        from now on (``capabilities.boot_device``)."""
        if device not in BOOT_TARGETS:
            raise InvalidInput(f"boot device '{device}': use one of {', '.join(BOOT_TARGETS)}")
        system = self._system(machine, f"set the boot device of '{machine.name}'")
        self._set_boot(machine.name, system, BOOT_TARGETS[device], once)
        return self._machine(machine.name, system)

    def migrate(self, machine: Machine, image: Image, target: dict[str, Any]) -> Machine:
        """Move a running machine to another host or datastore (``capabilities.migrate``)."""
        raise NotSupported(f"platform '{self.platform}' cannot migrate machines")

    def reconfigure(self, machine: Machine, hardware: HardwareProfile) -> Machine:
        """Change a machine's CPUs and memory (``capabilities.reconfigure``)."""
        raise NotSupported(f"platform '{self.platform}' cannot reconfigure machines")

    def customize(self, machine: Machine, image: Image, spec: dict[str, Any]) -> None:
        """Apply a platform-side customization (``capabilities.customize``)."""
        raise NotSupported(f"platform '{self.platform}' has no customization of its own")

    def cleanup(self, machine: Machine) -> list[str]:
        """Remove what a killed deploy or undeploy left (a half-made definition); return one
        line per thing removed."""
        return []

    def shutdown(self) -> None:
        """Stop what the driver started for itself (a private daemon); called when the core is
        done with the platform for good."""
        self.bmc.close()

    # -- virtual media (Redfish's own) -------------------------------------------------------
    def insert_media(self, machine: Machine, image_url: str) -> None:
        """Insert the disk image at ``image_url`` in the BMC's virtual CD drive, for a boot from
        ``media``: the BMC fetches it itself."""
        system = self._system(machine, f"insert virtual media in '{machine.name}'")
        with self.bmc.asking(f"insert virtual media in '{machine.name}'"):
            drive = _cd_drive(system)
            if drive is None:
                raise NotSupported(f"platform '{self.platform}': the BMC of '{machine.name}' has no "
                                   "virtual CD drive")
            drive.insert_media(image_url, inserted=True, write_protected=True)

    def eject_media(self, machine: Machine) -> None:
        """Eject what the virtual CD drive holds; an empty drive is not an error."""
        system = self._system(machine, f"eject virtual media from '{machine.name}'")
        with self.bmc.asking(f"eject virtual media from '{machine.name}'"):
            drive = _cd_drive(system)
            if drive is not None and drive.inserted:
                drive.eject_media()

    # -- boot source ---------------------------------------------------------------------------
    def _set_boot(self, name: str, system: Any, target: str, once: bool) -> None:
        import sushy

        with self.bmc.asking(f"set the boot source of '{name}'"):
            system.set_system_boot_options(
                target=sushy.BootSource(target),
                enabled=sushy.BootSourceOverrideEnabled("Once" if once else "Continuous"))

    def _restore_boot(self, name: str, system: Any, before: Machine) -> None:
        """Put back the boot source a failed deploy changed (best effort: the error that made
        the deploy fail is the one reported)."""
        target, enabled = before.extra.get("boot_target"), before.extra.get("boot_enabled")
        if target and enabled:
            try:
                self._set_boot(name, system, target, once=enabled == "Once")
            except DriverError:
                pass


def _value(field: Any) -> Any:
    """A sushy enum's Redfish value (``On``), or the value as it is."""
    return getattr(field, "value", field)


def _cpu_count(system: Any) -> int:
    """Logical CPUs; 0 when the service does not say (the emulator's fake driver)."""
    import sushy.exceptions as failures

    try:
        return int(system.processors.summary.count or 0)
    except (failures.MissingAttributeError, failures.ResourceNotFoundError):
        return 0


def _macs(system: Any) -> list[str]:
    import sushy.exceptions as failures

    try:
        return [mac.lower() for mac in system.ethernet_interfaces.summary]
    except (failures.MissingAttributeError, failures.ResourceNotFoundError):
        return []


def _cd_drive(system: Any) -> Any:
    """The virtual media drive of the system's manager that takes CDs, if any."""
    for manager in system.managers:
        for drive in manager.virtual_media.get_members():
            types = {_value(kind) for kind in drive.media_types or ()}
            if "CD" in types or "DVD" in types or drive.identity.lower() == "cd":
                return drive
    return None
