"""The platform driver of encompass-template: physical machines behind one management
controller (here the fake one).

Every method of :class:`~encompass_core.contracts.PlatformDriver` is here with the contract's
docstring; the bodies drive :mod:`.fake_chassis`. To make the driver yours, replace
``FakeChassis`` by your controller's client and keep the behaviour the conformance suite
checks (``tests/test_template_platform.py``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from encompass_core.contracts import Attachment, PlatformCapabilities, PlatformDriver
from encompass_core.errors import DriverError, InvalidInput, NotFound, NotSupported
from encompass_core.model import HardwareProfile, Image, Machine

from .fake_chassis import ChassisUnreachable, FakeChassis, NoSuchMachine

POWER_ACTIONS = ("on", "off", "reset")


class TemplatePlatformDriver(PlatformDriver):
    """Physical machines that boot their image from a SAN LUN (or the network)."""

    capabilities = PlatformCapabilities(kind="physical", attach_kinds=("iscsi", "fc"),
                                        boot_modes=("san", "pxe"), boot_device=("once",))

    def __init__(self, section: Any, config: Any) -> None:
        self.platform = section.name
        self.chassis = FakeChassis(section.settings["address"])

    @contextlib.contextmanager
    def _asking(self, what: str) -> Iterator[None]:
        """Turn the controller client's errors into the core's, naming this platform."""
        try:
            yield
        except ChassisUnreachable as exc:
            raise DriverError(f"platform '{self.platform}': cannot {what}: {exc}") from None
        except NoSuchMachine as exc:
            raise NotFound(f"platform '{self.platform}' has no machine '{exc}' (cannot {what}); "
                           "see: encompass machine list") from None

    def _machine(self, name: str, state: dict[str, Any]) -> Machine:
        return Machine(name=name, platform=self.platform, kind="physical", uuid=state["uuid"],
                       hardware=HardwareProfile(memory_mib=state["memory_mib"], cpus=state["cpus"]),
                       power=state["power"], macs=tuple(state["macs"]), disks=tuple(state["disks"]),
                       extra={"serial": state["serial"]})

    # -- required ----------------------------------------------------------------------------
    def discover(self) -> list[Machine]:
        """The machines the platform really has, with the volumes each one uses (``disks``)."""
        with self._asking("list its machines"):
            machines = self.chassis.machines()
        return [self._machine(name, state) for name, state in sorted(machines.items())]

    def power(self, machine: Machine, action: str) -> Machine:
        """``on``, ``off`` or ``reset``; return the machine with its new power state."""
        if action not in POWER_ACTIONS:
            raise InvalidInput(f"power action '{action}': use one of {', '.join(POWER_ACTIONS)}")
        with self._asking(f"power {action} machine '{machine.name}'"):
            if action == "reset":
                self.chassis.set_power(machine.name, "off")
                action = "on"
            state = self.chassis.set_power(machine.name, action)
        return self._machine(machine.name, state)

    def deploy(self, machine: Machine, image: Image, attachments: list[Attachment]) -> Machine:
        """Point the machine at the attached volumes (the one with ``boot`` set starts it) and
        boot it. A failure leaves the machine as it was."""
        foreign = sorted({a.kind for a in attachments} - set(self.capabilities.attach_kinds))
        if foreign:  # refused before anything changes
            raise NotSupported(f"platform '{self.platform}': machines take "
                               f"{', '.join(self.capabilities.attach_kinds)} volumes, not "
                               f"{', '.join(foreign)}")
        ordered = sorted(attachments, key=lambda a: (not a.boot, a.lun if a.lun is not None else a.index))
        with self._asking(f"deploy '{image.name}' on machine '{machine.name}'"):
            before = self.chassis.machines().get(machine.name)
            if before is None:
                raise NoSuchMachine(machine.name)
            try:
                self.chassis.set_disks(machine.name, [a.address for a in ordered])
                self.chassis.set_boot_once(machine.name, "san")
                state = self.chassis.set_power(machine.name, "on")
            except Exception:
                self.chassis.set_disks(machine.name, before["disks"])  # as it was
                raise
        return self._machine(machine.name, state)

    def undeploy(self, machine: Machine, image: Image) -> Machine:
        """Power the machine off and take the image's volumes out of its definition. A
        machine already off, or already without them, is not an error."""
        with self._asking(f"undeploy '{image.name}' from machine '{machine.name}'"):
            self.chassis.set_power(machine.name, "off")
            state = self.chassis.set_disks(machine.name, [])
        return self._machine(machine.name, state)

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
        if device not in self.capabilities.boot_modes:
            raise InvalidInput(f"boot device '{device}': use one of "
                               f"{', '.join(self.capabilities.boot_modes)}")
        if not once:
            raise NotSupported(f"platform '{self.platform}' sets the boot device for the next "
                               "boot only")
        with self._asking(f"set the boot device of machine '{machine.name}'"):
            state = self.chassis.set_boot_once(machine.name, device)
        return self._machine(machine.name, state)

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
