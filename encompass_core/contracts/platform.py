"""What the core expects of a platform driver: one configured platform of machines.

A driver derives from :class:`PlatformDriver`. What a platform cannot do, it does not declare
in its :class:`~.values.PlatformCapabilities`, and the optional method's default refuses with
:class:`~encompass_core.errors.NotSupported`; the core checks the capabilities first, so a
request is refused before any volume is attached or any machine changed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from ..errors import NotSupported
from ..model import HardwareProfile, Image, Machine
from .values import Attachment, PlatformCapabilities, missing


class PlatformDriver:
    """One platform's driver: a hypervisor, a vCenter, a chassis, a set of AMT PCs."""

    #: The platform's name (its ``[platforms.NAME]`` table).
    platform: str
    #: What its machines accept and what it can do.
    capabilities: ClassVar[PlatformCapabilities] = PlatformCapabilities()

    @property
    def kind(self) -> str:
        """``virtual`` or ``physical``: the capabilities' kind."""
        return self.capabilities.kind

    # -- required ----------------------------------------------------------------------------
    def discover(self) -> list[Machine]:
        """The machines the platform really has, with the volumes each one uses (``disks``)."""
        raise missing(self, "discover")

    def power(self, machine: Machine, action: str) -> Machine:
        """``on``, ``off`` or ``reset``; return the machine with its new power state."""
        raise missing(self, "power")

    def deploy(self, machine: Machine, image: Image, attachments: list[Attachment]) -> Machine:
        """Point the machine at the attached volumes (the one with ``boot`` set starts it) and
        boot it. A failure leaves the machine as it was."""
        raise missing(self, "deploy")

    def undeploy(self, machine: Machine, image: Image) -> Machine:
        """Power the machine off and take the image's volumes out of its definition. A
        machine already off, or already without them, is not an error."""
        raise missing(self, "undeploy")

    # -- optional ----------------------------------------------------------------------------
    def console_log(self, machine: Machine) -> Path | None:
        """Where the machine's console output is kept, if anywhere."""
        return None

    def create_machine(self, name: str, image: Image) -> Machine:
        """Create a virtual machine fitting the image's hardware profile
        (``capabilities.create_machines``)."""
        raise NotSupported(f"platform '{self.platform}' cannot create machines")

    def destroy_machine(self, machine: Machine) -> None:
        """Remove a machine this platform created; a machine already gone is not an error."""
        raise NotSupported(f"platform '{self.platform}' cannot remove machines")

    def set_boot_device(self, machine: Machine, device: str, once: bool) -> Machine:
        """Boot ``device`` (one of ``capabilities.boot_modes``) next time only (``once``) or
        from now on (``capabilities.boot_device``)."""
        raise NotSupported(f"platform '{self.platform}' cannot set a machine's boot device")

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
