"""Discovery, power, restart and boot sequence through the Management Module's SNMP agent: what
the driver reports and changes is what the lab machines behind the chassis really are and do."""

from __future__ import annotations

import asyncio
import json

import pytest
from bladecenter_testing import SLOTS, make_driver
from encompass_bladecenter import oids
from encompass_bladecenter.chassis import Chassis
from encompass_bladecenter.snmp import Credentials

from encompass_core.errors import InvalidInput, NotFound, NotSupported


def qemu_pid(chassis, slot: int) -> int | None:
    path = chassis.blade(slot).directory / "power.json"
    return json.loads(path.read_text())["pid"] if path.exists() else None


def test_discovery_lists_each_blade_with_its_identity(driver, chassis):
    found = {machine.extra["slot"]: machine for machine in driver.discover()}

    assert sorted(found) == list(SLOTS)  # the other 10 slots are empty
    for slot, machine in found.items():
        identity = chassis.blade(slot).identity
        assert machine.name == f"chassis1-blade{slot}" and machine.kind == "physical"
        assert machine.uuid == identity.uuid  # the SMBIOS UUID the guest sees
        assert machine.macs == (identity.mac,)
        assert machine.extra["serial"] == identity.serial
        assert (machine.extra["machine_type"], machine.extra["model"]) == ("8853", "AC1")
        assert [(p.kind, p.address) for p in machine.host_ports] == [("iscsi", identity.initiator)]
        assert machine.extra["health"] == "good" and machine.power == "off"
        assert (machine.hardware.memory_mib, machine.hardware.cpus) == (256, 1)  # as configured


def test_power_on_and_off_start_and_stop_the_blades_guest(driver, chassis):
    blade = next(m for m in driver.discover() if m.extra["slot"] == 2)

    assert driver.power(blade, "on").power == "on"
    assert chassis.blade(2).power_state() == "on"
    assert driver.power_states() == {"chassis1-blade1": "off", "chassis1-blade2": "on",
                                     "chassis1-blade3": "off", "chassis1-blade4": "off"}
    before = qemu_pid(chassis, 2)
    assert driver.power(blade, "reset").power == "on"
    assert qemu_pid(chassis, 2) not in (None, before)  # restartBlade: the firmware starts anew
    assert driver.power(blade, "off").power == "off"
    assert chassis.blade(2).power_state() == "off"


def test_a_guest_that_powers_itself_off_reads_off(driver, chassis):
    blade = next(m for m in driver.discover() if m.extra["slot"] == 1)
    driver.power(blade, "on")
    chassis.blade(1).power_off()  # as the demo guest's poweroff does
    assert driver.power_states()["chassis1-blade1"] == "off"


def test_the_boot_sequence_becomes_the_blades_boot_order(driver, chassis):
    blade = next(m for m in driver.discover() if m.extra["slot"] == 3)
    assert blade.extra["boot_sequence"] == ["hd0", "network", "none", "none"]

    changed = driver.set_boot_device(blade, "pxe", once=False)

    assert changed.extra["boot_sequence"] == ["network", "hd0", "none", "none"]
    assert chassis.blade(3).settings.boot_order == ("network", "san")
    driver.set_boot_device(blade, "san", once=False)
    assert chassis.blade(3).settings.boot_order == ("san", "network")
    with pytest.raises(NotSupported, match="not a one-time boot device"):
        driver.set_boot_device(blade, "pxe", once=True)
    with pytest.raises(InvalidInput, match="'cd' is not one of"):
        driver.set_boot_device(blade, "cd", once=False)


def test_an_empty_slot_and_another_platforms_machine_are_not_found(driver):
    blade = next(m for m in driver.discover() if m.extra["slot"] == 1)
    empty = blade.__class__(name="chassis1-blade9", platform="chassis1", kind="physical")
    with pytest.raises(NotFound, match="slot 9 holds no blade"):
        driver.power(empty, "on")
    stranger = blade.__class__(name="web01", platform="kvm")
    with pytest.raises(NotFound, match="has no machine 'web01'"):
        driver.power(stranger, "on")


def test_power_states_of_several_chassis_are_polled_concurrently(chassis):
    """The poller's API: one Chassis per MM, one engine shared, awaited together."""
    from pysnmp.hlapi.v3arch.asyncio import SnmpEngine

    driver = make_driver(chassis)

    async def poll():
        engine = SnmpEngine()
        try:
            chassis_list = [Chassis(driver.target, Credentials("2c", community=chassis.community), engine)
                            for _ in range(3)]
            for opened in chassis_list:
                await opened.__aenter__()
            return await asyncio.gather(*(opened.power_states() for opened in chassis_list))
        finally:
            engine.close_dispatcher()

    answers = asyncio.run(poll())
    assert answers == [dict.fromkeys(SLOTS, "off")] * 3


def poll(chassis, action):
    """``action(opened Chassis)`` awaited on the lab chassis."""
    async def run():
        async with Chassis(make_driver(chassis).target,
                           Credentials("2c", community=chassis.community)) as opened:
            return await action(opened)
    return asyncio.run(run())


def test_the_mm_reports_its_installed_bays_as_a_bitmap(chassis):
    """bistBladesInstalled, which power_states reads instead of walking the exists column."""
    bitmap = poll(chassis, lambda opened: opened._session.get([(*oids.BLADES_INSTALLED, 0)]))
    assert bitmap == {(*oids.BLADES_INSTALLED, 0): "11110000000000"}


def test_columns_walked_side_by_side_match_each_column_walked_alone(chassis):
    """Two repetitions per GETBULK for 14 rows: the side-by-side walk needs several round
    trips and must still stop each column at its end, and keep the scalar's answer."""
    async def both(opened):
        session = opened._session
        together = await session.walk_columns([oids.BLADE_EXISTS, oids.BLADE_NAME], 2,
                                              scalars=[oids.BLADES_INSTALLED])
        return together, await session.walk(oids.BLADE_EXISTS), await session.walk(oids.BLADE_NAME)

    together, exists, names = poll(chassis, both)
    assert together[oids.BLADE_EXISTS] == exists and len(exists) == 14
    assert together[oids.BLADE_NAME] == names
    assert together[oids.BLADES_INSTALLED] == {(*oids.BLADES_INSTALLED, 0): "11110000000000"}


def test_an_mm_without_the_bitmap_still_lists_only_installed_blades(chassis, monkeypatch):
    """Older MM firmware lacks bistBladesInstalled: the exists column is walked instead."""
    monkeypatch.setattr(oids, "BLADES_INSTALLED", (*oids.BLADE_CENTER, 2, 5, 2, 99))
    assert poll(chassis, lambda opened: opened.power_states()) == dict.fromkeys(SLOTS, "off")
