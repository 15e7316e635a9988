"""What Encompass asks of one AMT PC: its power state, a power change, a one-time boot source,
its identity (host name, system UUID, MACs, chassis). Each is the message sequence the Intel AMT
SDK documents for it, sent through an :class:`~.client.AmtClient`.
"""

from __future__ import annotations

import asyncio
import time

import attrs

from . import wsman
from .client import AmtClient, AmtError
from .settings import BOOT_CHOICES, Endpoint

#: ``AMT_BootSettingData`` properties a Put writes back (the rest are read-only or per version).
WRITABLE_BOOT_SETTINGS = (
    "BIOSPause", "BIOSSetup", "BootMediaIndex", "ConfigurationDataReset", "ElementName",
    "FirmwareVerbosity", "ForcedProgressEvents", "IDERBootDevice", "InstanceID", "LockKeyboard",
    "LockPowerButton", "LockResetButton", "LockSleepButton", "OwningEntity", "ReflashBIOS",
    "SecureErase", "UseIDER", "UseSOL", "UseSafeMode", "UserPasswordBypass",
)


@attrs.frozen
class Identity:
    """Who a PC is: AMT's host name for it, its system UUID, its MACs, its chassis."""

    hostname: str | None
    uuid: str | None
    macs: tuple[str, ...]
    manufacturer: str | None = None
    model: str | None = None
    serial: str | None = None


def _one(values: dict[str, list[str]], key: str) -> str | None:
    found = values.get(key)
    return found[0] if found and found[0] else None


async def power_code(client: AmtClient, endpoint: Endpoint) -> int:
    """``CIM_AssociatedPowerManagementService.PowerState`` (2 on, 8 off soft, 6/13 off hard...)."""
    values = await client.get(endpoint, wsman.POWER_ASSOCIATION)
    text = _one(values, "PowerState")
    if text is None or not text.isdigit():
        raise AmtError(f"{client.where}: AMT at {endpoint.label} reports no PowerState "
                       f"(got {text!r})")
    return int(text)


async def power_state(client: AmtClient, endpoint: Endpoint) -> str:
    """``on``, ``off`` or ``unknown`` (a state the SDK does not map to either)."""
    return wsman.POWER_STATES.get(await power_code(client, endpoint), "unknown")


async def request_power(client: AmtClient, endpoint: Endpoint, state: int, what: str) -> None:
    """``CIM_PowerManagementService.RequestPowerStateChange`` of the managed system."""
    managed = wsman.reference(wsman.COMPUTER_SYSTEM, {"CreationClassName": "CIM_ComputerSystem",
                                                      "Name": wsman.MANAGED_SYSTEM})
    fields = f"<p:PowerState>{state}</p:PowerState><p:ManagedElement>{managed}</p:ManagedElement>"
    await client.invoke(endpoint, wsman.POWER_SERVICE, "RequestPowerStateChange", fields,
                        {"Name": wsman.POWER_SERVICE_NAME}, what)


async def set_power(client: AmtClient, endpoint: Endpoint, action: str, settle: float) -> str:
    """Power ``on``, ``off`` or ``reset``; wait up to ``settle`` seconds for AMT to report the
    new state, and return it. A PC already in the state asked for is left alone."""
    current = await power_state(client, endpoint)
    if action == "on" and current != "on":
        await request_power(client, endpoint, wsman.POWER_ON, "power the PC on")
    elif action == "off" and current != "off":
        await request_power(client, endpoint, wsman.POWER_OFF, "power the PC off")
    elif action == "reset":
        state = wsman.POWER_RESET if current == "on" else wsman.POWER_ON
        await request_power(client, endpoint, state, "reset the PC")
    wanted = "off" if action == "off" else "on"
    deadline = time.monotonic() + settle
    while True:
        current = await power_state(client, endpoint)
        if current == wanted or time.monotonic() >= deadline:
            return current
        await asyncio.sleep(0.1)  # AMT reports the change once the chipset has made it


async def boot_once(client: AmtClient, endpoint: Endpoint, source: str) -> None:
    """Boot ``source`` (one of :data:`BOOT_CHOICES`) at the next power on or reset only.

    The SDK's sequence: write ``AMT_BootSettingData`` (IDE-R or not), make the AMT boot
    configuration the one used next time (``CIM_BootService.SetBootConfigRole``, role 1), and
    name the source (``CIM_BootConfigSetting.ChangeBootOrder``; none for IDE-R, which boots the
    redirected drive the settings name). AMT forgets all of it after that boot.
    """
    if source not in BOOT_CHOICES:
        raise AmtError(f"{client.where}: unknown boot source '{source}' "
                       f"(one of {', '.join(BOOT_CHOICES)})")
    ider = source.startswith("ider-")
    current = await client.get(endpoint, wsman.BOOT_SETTINGS,
                               {"InstanceID": wsman.BOOT_SETTINGS_ID})
    values: dict[str, object] = {key: current[key][0] for key in WRITABLE_BOOT_SETTINGS
                                 if key in current}
    values.update(InstanceID=wsman.BOOT_SETTINGS_ID, UseIDER=ider, BIOSPause=False, BIOSSetup=False,
                  IDERBootDevice=wsman.IDER_CD if source == "ider-cd" else wsman.IDER_FLOPPY)
    await client.put(endpoint, wsman.BOOT_SETTINGS, values, {"InstanceID": wsman.BOOT_SETTINGS_ID})
    config = wsman.reference(wsman.BOOT_CONFIG, {"InstanceID": wsman.BOOT_CONFIG_ID})
    await client.invoke(endpoint, wsman.BOOT_SERVICE, "SetBootConfigRole",
                        f"<p:BootConfigSetting>{config}</p:BootConfigSetting><p:Role>1</p:Role>",
                        {"Name": wsman.BOOT_SERVICE_NAME}, "use the AMT boot configuration next time")
    fields = "" if ider else (
        "<p:Source>"
        + wsman.reference(wsman.BOOT_SOURCE, {"InstanceID": wsman.BOOT_SOURCES[source]})
        + "</p:Source>")
    await client.invoke(endpoint, wsman.BOOT_CONFIG, "ChangeBootOrder", fields,
                        {"InstanceID": wsman.BOOT_CONFIG_ID}, f"boot {source} next time")


async def identity(client: AmtClient, endpoint: Endpoint) -> Identity:
    """The PC's host name (``AMT_GeneralSettings``), system UUID (``CIM_ComputerSystemPackage``),
    chassis (``CIM_Chassis``) and MACs (``AMT_EthernetPortSettings``)."""
    general = await client.get(endpoint, wsman.GENERAL_SETTINGS)
    packages = await client.enumerate(endpoint, wsman.SYSTEM_PACKAGE)
    chassis = await client.enumerate(endpoint, wsman.CHASSIS)
    ports = await client.enumerate(endpoint, wsman.ETHERNET_PORTS)
    guid = next((_one(package, "PlatformGUID") for package in packages
                 if _one(package, "PlatformGUID")), None)
    try:
        system_uuid = wsman.platform_guid(guid) if guid else None
    except wsman.Malformed as exc:
        raise AmtError(f"{client.where}: AMT at {endpoint.label}: {exc}") from None
    macs = tuple(dict.fromkeys(wsman.mac_address(mac) for port in ports
                               if (mac := _one(port, "MACAddress"))))
    box = chassis[0] if chassis else {}
    return Identity(hostname=_one(general, "HostName"), uuid=system_uuid, macs=macs,
                    manufacturer=_one(box, "Manufacturer"), model=_one(box, "Model"),
                    serial=_one(box, "SerialNumber"))
