"""The conformance suite of platform drivers: every method of
:class:`~encompass_core.contracts.PlatformDriver`, its error cases and its declared capabilities.

Subclass :class:`PlatformDriverSuite` in a test module (a class named ``Test...``) and provide
the fixtures ``driver``, ``record``, ``image`` and ``attachments``; see
:mod:`encompass_core.testing`.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from ..contracts import ATTACH_KINDS, BOOT_MODES, Attachment, PlatformCapabilities, PlatformDriver
from ..errors import Conflict, EncompassError, NotFound, NotSupported
from ..model import HardwareProfile, Machine
from .common import check_record

MACHINE = "conformance-vm"
BOOT_DEVICE_SETTINGS = ("once", "persistent")

#: Each optional capability and the methods a driver declaring it must implement.
OPTIONAL_METHODS = {
    "create_machines": ("create_machine", "destroy_machine"),
    "boot_device": ("set_boot_device",),
    "migrate": ("migrate",),
    "reconfigure": ("reconfigure",),
    "customize": ("customize",),
}


def names(driver: PlatformDriver) -> list[str]:
    """The names of the machines the platform really has."""
    return [machine.name for machine in driver.discover()]


def power_of(driver: PlatformDriver, machine: Machine) -> str:
    """The machine's power state, as discovery sees it."""
    return next(m.power for m in driver.discover() if m.name == machine.name)


class PlatformDriverSuite:
    """Tests every platform driver passes. Fixtures to provide: ``driver`` (closed afterwards),
    ``record`` (the record the plugin registers), ``image`` (an
    :class:`~encompass_core.model.Image` the platform can start, its volumes made by a pool)
    and ``attachments`` (the :class:`~encompass_core.contracts.Attachment` list of its volumes,
    as the pool's ``attach`` gave them).

    ``machine`` defaults to a machine the driver creates (``create_machines``) and removes
    afterwards; a platform of physical machines overrides it with one of its machines, off.
    Instead of ``image`` and ``attachments``, a subclass may provide ``deployable``: the pair
    ``(image, attachments)``, as one fixture usually makes both.
    """

    @pytest.fixture
    def image(self, deployable):
        return deployable[0]

    @pytest.fixture
    def attachments(self, deployable):
        return deployable[1]

    @pytest.fixture
    def machine(self, driver: PlatformDriver, image):
        if not driver.capabilities.create_machines:
            raise AssertionError("a platform that creates no machines overrides the 'machine' "
                                 "fixture with one of its own machines, powered off")
        made = driver.create_machine(MACHINE, image)
        yield made
        with contextlib.suppress(EncompassError):
            driver.destroy_machine(made)

    # -- what the driver is --------------------------------------------------------------------
    def test_the_driver_derives_from_the_contract_and_declares_what_it_does(self, driver, record):
        assert isinstance(driver, PlatformDriver)
        caps = driver.capabilities
        assert isinstance(caps, PlatformCapabilities)
        assert caps.kind in ("virtual", "physical") and driver.kind == caps.kind
        assert caps.attach_kinds, "declare the attachment kinds the machines take"
        assert set(caps.attach_kinds) <= set(ATTACH_KINDS), caps.attach_kinds
        assert caps.boot_modes and set(caps.boot_modes) <= set(BOOT_MODES), caps.boot_modes
        assert set(caps.boot_device) <= set(BOOT_DEVICE_SETTINGS), caps.boot_device
        for capability, methods in OPTIONAL_METHODS.items():
            if getattr(caps, capability):
                for method in methods:
                    assert getattr(type(driver), method) is not getattr(PlatformDriver, method), \
                        f"{capability} is declared, and {method} is not implemented"
        check_record(record, driver)

    # -- discovery, power ------------------------------------------------------------------------
    def test_discover_returns_the_machines_of_this_platform(self, driver, machine):
        found = driver.discover()
        assert all(isinstance(item, Machine) for item in found)
        assert {item.platform for item in found} == {driver.platform}
        assert all(item.kind == driver.kind for item in found)
        assert all(item.power in ("on", "off", "unknown") for item in found)
        assert machine.name in [item.name for item in found]

    def test_discovered_machines_carry_an_identity(self, driver, machine):
        """``encompass discover`` matches machines by identity, not by name: each has a UUID,
        a serial number or MAC addresses, and the same ones when asked again."""
        first = {item.name: item for item in driver.discover()}
        again = {item.name: item for item in driver.discover()}
        for name, item in first.items():
            assert item.uuid or item.serial or item.macs, f"machine '{name}' has no identity"
            assert (item.uuid, item.serial, item.macs) == \
                (again[name].uuid, again[name].serial, again[name].macs)

    def test_power_on_and_off_changes_the_power_state(self, driver, machine):
        running = driver.power(machine, "on")
        assert isinstance(running, Machine) and running.power == "on"
        assert power_of(driver, machine) == "on"
        stopped = driver.power(machine, "off")
        assert stopped.power == "off" and power_of(driver, machine) == "off"
        assert driver.power(machine, "off").power == "off"  # already off: not an error

    def test_an_unknown_machine_is_not_found(self, driver, image, attachments):
        ghost = Machine(name="conformance-ghost", platform=driver.platform, kind=driver.kind)
        with pytest.raises(NotFound):
            driver.power(ghost, "on")
        with pytest.raises(NotFound):
            driver.deploy(ghost, image, attachments)
        assert ghost.name not in names(driver)

    # -- machines --------------------------------------------------------------------------------
    def test_machines_are_created_and_destroyed_as_declared(self, driver, image):
        if not driver.capabilities.create_machines:
            with pytest.raises(NotSupported):
                driver.create_machine("conformance-new", image)
            assert "conformance-new" not in names(driver)
            return
        made = driver.create_machine("conformance-new", image)
        try:
            assert isinstance(made, Machine)
            assert (made.name, made.platform, made.power) == ("conformance-new", driver.platform, "off")
            assert "conformance-new" in names(driver)
            with pytest.raises(Conflict):  # a name clash
                driver.create_machine("conformance-new", image)
            assert names(driver).count("conformance-new") == 1
        finally:
            driver.destroy_machine(made)
        assert "conformance-new" not in names(driver)
        driver.destroy_machine(made)  # already gone: not an error

    # -- deploy ----------------------------------------------------------------------------------
    def test_deploy_starts_the_image_and_undeploy_stops_it(self, driver, machine, image, attachments):
        assert any(attachment.boot for attachment in attachments), "one attachment boots"
        deployed = driver.deploy(machine, image, attachments)
        try:
            assert isinstance(deployed, Machine) and deployed.name == machine.name
            assert deployed.power == "on" and power_of(driver, machine) == "on"
        finally:
            stopped = driver.undeploy(deployed, image)
        assert stopped.power == "off" and power_of(driver, machine) == "off"
        assert not {a.address for a in attachments} & set(stopped.disks)
        again = driver.undeploy(stopped, image)  # already undeployed: not an error
        assert again.power == "off"

    def test_a_failed_deploy_leaves_the_machine_as_it_was(self, driver, machine, image, attachments):
        foreign = [kind for kind in ATTACH_KINDS if kind not in driver.capabilities.attach_kinds]
        if not foreign:
            return  # it takes every kind there is
        bad = [Attachment(index=a.index, kind=foreign[0], address=a.address, format=a.format,
                          boot=a.boot, lun=a.lun) for a in attachments]
        before = next(m for m in driver.discover() if m.name == machine.name)
        with pytest.raises(EncompassError):
            driver.deploy(machine, image, bad)
        after = next(m for m in driver.discover() if m.name == machine.name)
        assert (after.power, after.disks) == (before.power, before.disks)

    # -- optional methods ------------------------------------------------------------------------
    def test_what_is_not_declared_is_not_supported(self, driver, machine, image):
        caps = driver.capabilities
        refused = []
        if not caps.boot_device:
            refused.append(lambda: driver.set_boot_device(machine, caps.boot_modes[0], True))
        if not caps.migrate:
            refused.append(lambda: driver.migrate(machine, image, {}))
        if not caps.reconfigure:
            refused.append(lambda: driver.reconfigure(machine, HardwareProfile(memory_mib=512)))
        if not caps.customize:
            refused.append(lambda: driver.customize(machine, image, {}))
        if not caps.create_machines:
            refused.append(lambda: driver.destroy_machine(machine))
        for call in refused:
            with pytest.raises(NotSupported):
                call()
        assert machine.name in names(driver)

    def test_reconfigure_changes_cpus_and_memory_as_declared(self, driver, machine):
        if not driver.capabilities.reconfigure:
            return  # refused: test_what_is_not_declared_is_not_supported
        wanted = HardwareProfile(memory_mib=machine.hardware.memory_mib + 64,
                                 cpus=machine.hardware.cpus + 1)
        changed = driver.reconfigure(machine, wanted)
        assert (changed.hardware.memory_mib, changed.hardware.cpus) == (wanted.memory_mib, wanted.cpus)
        found = {m.name: m for m in driver.discover()}[machine.name]
        assert (found.hardware.memory_mib, found.hardware.cpus) == (wanted.memory_mib, wanted.cpus)

    def test_cleanup_returns_lines_and_console_log_a_path(self, driver, machine):
        removed = driver.cleanup(machine)
        assert isinstance(removed, list) and all(isinstance(line, str) for line in removed)
        log = driver.console_log(machine)
        assert log is None or isinstance(log, Path)
