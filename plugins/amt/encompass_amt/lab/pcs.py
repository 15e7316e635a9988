"""The lab's AMT PCs: what each one is (identity, one-time boot configuration) and what stands
behind it: a power state only (:class:`PowerOnly`) or a lab machine, a QEMU guest
(:class:`LabPc`, made by :func:`add_lab_pc`). :mod:`.responder` serves them."""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Sequence
from typing import Any, Protocol

import attrs

#: The one-time boot sources ``ChangeBootOrder`` may name, and what the PC then boots.
FORCED_SOURCES = {"Intel(r) AMT: Force PXE Boot": "pxe",
                  "Intel(r) AMT: Force Hard-drive Boot": "hdd",
                  "Intel(r) AMT: Force CD/DVD Boot": "cd"}
BOOT_CONFIG_ID = "Intel(r) AMT: Boot Configuration 0"
BOOT_SETTINGS_ID = "Intel(r) AMT:BootSettingData 0"
#: RequestPowerStateChange: on, power cycle, off (hard), master bus reset.
ON, CYCLE, OFF, RESET = 2, 5, 8, 10
#: What the PC reports: on (S0) or soft off (S5).
REPORTED_ON, REPORTED_OFF = 2, 8


class PcBackend(Protocol):
    """What stands behind a PC: powering it on boots ``boot`` (``hdd``, ``pxe``, ``cd``,
    ``ider-cd``, ``ider-floppy``, or ``default``: its firmware's own boot order)."""

    def power_on(self, boot: str) -> None: ...
    def power_off(self) -> None: ...
    def is_on(self) -> bool: ...


class PowerOnly:
    """A PC that is only a power state; ``boots`` records what each power on booted."""

    blocking = False  # its calls return at once: no worker thread needed

    def __init__(self, on: bool = False) -> None:
        self.on = on
        self.boots: list[str] = []

    def power_on(self, boot: str) -> None:
        self.on = True
        self.boots.append(boot)

    def power_off(self) -> None:
        self.on = False

    def is_on(self) -> bool:
        return self.on


class LabPc:
    """A lab machine (a QEMU guest, :class:`~encompass_core.testing.lab.LabMachine`) behind an
    AMT PC: a one-time boot source replaces its firmware's boot order for that power on only
    (hard drive: its SAN LUN 0, else its disk; PXE: the network; CD and IDE-R: the CD drive,
    where the lab inserts nothing), then the order it had is back."""

    ONE_TIME = {"hdd": ("san", "disk"), "pxe": ("network",), "cd": ("cd",), "ider-cd": ("cd",),
                "ider-floppy": ("none",)}
    blocking = True  # starting QEMU takes a while: the responder calls it from a worker thread

    def __init__(self, machine: Any) -> None:
        self.machine = machine

    def power_on(self, boot: str) -> None:
        order = self.ONE_TIME.get(boot)
        if order is None:
            self.machine.power_on()
            return
        persistent = self.machine.settings.boot_order
        self.machine.set_boot_order(order)
        try:
            self.machine.power_on()
        finally:
            self.machine.set_boot_order(persistent)

    def power_off(self) -> None:
        self.machine.power_off()

    def is_on(self) -> bool:
        return self.machine.power_state() == "on"


def add_lab_pc(lab: Any, name: str, *, san_portal: str | None = None,
               boot_order: Sequence[str] = ("network",), initiator_prefix: str = "iqn.2010-04.org.ipxe",
               **settings: Any) -> AmtPc:
    """A lab machine ``name`` made an AMT PC: its iSCSI boot initiator is ``PREFIX:UUID``
    (iPXE's default, which the ``amt`` plugin reports as the PC's host port), its firmware's
    own order ``boot_order`` (the network first: without a one-time AMT boot source it boots
    nothing), its SAN the portal at ``san_portal``."""
    from encompass_core.testing.lab import identity_for

    base = identity_for(name, seed="encompass-amt-lab")
    identity = attrs.evolve(base, initiator=f"{initiator_prefix}:{base.uuid}", manufacturer="QEMU",
                            product="Standard PC (AMT lab)")
    machine = lab.add(name, boot_order=boot_order, san_portal=san_portal, identity=identity, **settings)
    identity = machine.identity
    return AmtPc(name, uuid=identity.uuid, macs=(identity.mac,), serial=identity.serial,
                 backend=LabPc(machine))


@attrs.define
class AmtPc:
    """One AMT PC: its identity, its one-time boot configuration, what stands behind it.

    ``denied``: methods or classes (``RequestPowerStateChange``, ``AMT_BootSettingData``) this
    PC's user may not use (an AccessDenied fault); ``latency``: seconds each answer takes, as a
    Management Engine's firmware takes tens of milliseconds.
    """

    hostname: str
    uuid: str = attrs.field(factory=lambda: str(uuidlib.uuid4()))
    macs: tuple[str, ...] = ()
    backend: Any = attrs.field(factory=PowerOnly)
    serial: str = ""
    denied: set[str] = attrs.field(factory=set)
    latency: float = 0.0
    boot_settings: dict[str, str] = attrs.field(factory=lambda: {
        "BIOSPause": "false", "BIOSSetup": "false", "BootMediaIndex": "0",
        "ConfigurationDataReset": "false", "ElementName": "Intel(r) AMT Boot Configuration Settings",
        "FirmwareVerbosity": "0", "ForcedProgressEvents": "false", "IDERBootDevice": "0",
        "InstanceID": BOOT_SETTINGS_ID, "LockKeyboard": "false", "LockPowerButton": "false",
        "LockResetButton": "false", "LockSleepButton": "false", "OwningEntity": "Intel(r) AMT",
        "ReflashBIOS": "false", "SecureErase": "false", "UseIDER": "false", "UseSOL": "false",
        "UseSafeMode": "false", "UserPasswordBypass": "false"})
    boot_role: bool = False
    boot_source: str | None = None

    def __attrs_post_init__(self) -> None:
        if not self.macs:
            self.macs = ("52:54:00:" + ":".join(self.uuid.replace("-", "")[i:i + 2] for i in (0, 2, 4)),)
        self.serial = self.serial or self.uuid.replace("-", "")[:10].upper()

    def next_boot(self) -> str:
        """What the next power on boots, forgetting the one-time settings (AMT clears them)."""
        boot = "default"
        if self.boot_role:
            if self.boot_settings.get("UseIDER") == "true":
                boot = "ider-cd" if self.boot_settings.get("IDERBootDevice") == "1" else "ider-floppy"
            elif self.boot_source:
                boot = FORCED_SOURCES[self.boot_source]
        self.boot_role, self.boot_source = False, None
        self.boot_settings["UseIDER"] = "false"
        return boot
