"""The BLADE-MIB objects the driver reads and sets (IBM BladeCenter Management Module), with the
meaning of their values. From ``BLADE-MIB``: ``bladeCenterSnmpMIB`` is
``enterprises.ibm(2).ibmAgents(3).netfinitySupportProcessorAgent(51).2``.

Every table below is indexed by the blade's slot (1..14): ``COLUMN + (slot,)``.
"""

from __future__ import annotations

BLADE_CENTER = (1, 3, 6, 1, 4, 1, 2, 3, 51, 2)

# monitors(2).spStatus(5).mmBistAndChassisStatus(2).bistBladesInstalled(33).0: the bays holding
# a blade as a string of 0s and 1s, bay 1 first ("10001000000010")
BLADES_INSTALLED = (*BLADE_CENTER, 2, 5, 2, 33)

# blades(22).processorBlade(1).bladeRemoteControl(4).bladeRemoteControlTable(1).entry(1)
REMOTE_CONTROL_ENTRY = (*BLADE_CENTER, 22, 1, 4, 1, 1)
BLADE_EXISTS = (*REMOTE_CONTROL_ENTRY, 3)  # remoteControlBladeExists: false(0), true(1)
BLADE_POWER_STATE = (*REMOTE_CONTROL_ENTRY, 4)  # remoteControlBladePowerState
BLADE_HEALTH = (*REMOTE_CONTROL_ENTRY, 5)  # remoteControlBladeHealthState
BLADE_NAME = (*REMOTE_CONTROL_ENTRY, 6)  # remoteControlBladeName

# processorBlade(1).bladeBootSequenceTable(3).entry(1): bootSequence1..4 are columns 7..10
BOOT_SEQUENCE_ENTRY = (*BLADE_CENTER, 22, 1, 3, 1)
BOOT_SEQUENCE = tuple((*BOOT_SEQUENCE_ENTRY, column) for column in (7, 8, 9, 10))

# processorBlade(1).bladePowerRestart(6).bladePowerRestartTable(1).entry(1)
POWER_RESTART_ENTRY = (*BLADE_CENTER, 22, 1, 6, 1, 1)
POWER_ON_OFF = (*POWER_RESTART_ENTRY, 7)  # powerOnOffBlade: off(0), on(1), softoff(2)
RESTART = (*POWER_RESTART_ENTRY, 8)  # restartBlade: execute(1)

# monitors(2).vpdInformation(21).bladeHardwareVpd(4)
BLADE_VPD_ENTRY = (*BLADE_CENTER, 2, 21, 4, 1, 1)  # bladeHardwareVpdTable
VPD_SERIAL = (*BLADE_VPD_ENTRY, 6)
VPD_MACHINE_TYPE = (*BLADE_VPD_ENTRY, 7)
VPD_UUID = (*BLADE_VPD_ENTRY, 8)
VPD_MACHINE_MODEL = (*BLADE_VPD_ENTRY, 12)
MAC_ENTRY = (*BLADE_CENTER, 2, 21, 4, 2, 1)  # bladeMACAddressVpdTable
MAC_COLUMNS = tuple((*MAC_ENTRY, column) for column in range(2, 10))  # bladeMACAddress1..8Vpd
WWN_ENTRY = (*BLADE_CENTER, 2, 21, 4, 7, 1)  # bladeAndExpCardWwnGuidVpdTable
WWN_BLADE_BAY = (*WWN_ENTRY, 4)  # the blade's bay, for the blade and its expansion cards
WWN_TYPE = (*WWN_ENTRY, 5)  # notAvailable(0), wwn(1), guid(2), sas(3)
WWN_COLUMNS = tuple((*WWN_ENTRY, column) for column in range(6, 14))  # ...WwnGuidVpd1..8

POWER_STATES = {0: "off", 1: "on", 3: "standby", 4: "hibernate", 255: "unknown"}
HEALTH_STATES = {0: "unknown", 1: "good", 2: "warning", 3: "critical", 4: "kernelMode",
                 5: "discovering", 6: "commError", 7: "noPower", 8: "flashing", 9: "initFailure",
                 10: "insufficientPower", 11: "powerDenied"}
POWER_SET = {"off": 0, "on": 1, "softoff": 2}
RESTART_EXECUTE = 1

#: bootSequenceN values and the names users give them (``encompass`` boot modes map onto them).
BOOT_DEVICES = {0: "none", 1: "floppy", 2: "cd", 3: "hd0", 4: "hd1", 5: "hd2", 6: "hd3",
                7: "network", 8: "iscsi", 9: "iscsi-critical", 10: "hd4", 11: "usb",
                12: "hypervisor", 13: "uefi", 14: "legacy", 255: "not-available"}
BOOT_VALUES = {name: value for value, name in BOOT_DEVICES.items()}
SLOTS = range(1, 15)  # a BladeCenter E or H chassis holds 14 blades


def column(oid: tuple[int, ...], slot: int) -> tuple[int, ...]:
    """The instance of a table column for the blade in ``slot``."""
    return (*oid, slot)


def dotted(oid: tuple[int, ...]) -> str:
    """``1.3.6.1...`` as SNMP tools write it."""
    return ".".join(map(str, oid))
