"""Virtual machines as the core sees them, and the device specs the platform driver sends."""

from __future__ import annotations

from typing import Any

from encompass_core.model import HardwareProfile, Machine

from .connection import pyvmomi
from .inventory import Inventory, Item

POWER = {"poweredOn": "on", "poweredOff": "off"}
#: SCSI unit 7 is the controller's own.
SCSI_UNITS = tuple(unit for unit in range(16) if unit != 7)


def devices(item: Item) -> list[Any]:
    return list(item.props.get("config.hardware.device") or ())


def disks(item: Item) -> list[Any]:
    vim, _ = pyvmomi()
    return [device for device in devices(item) if isinstance(device, vim.vm.device.VirtualDisk)]


def disk_file(disk: Any) -> str:
    return getattr(disk.backing, "fileName", "") or ""


def _guest_nics(item: Item) -> list[Any]:
    """The VM's own NICs as its guest reports them (an address of the guest's own, such as a
    bridge, has no device: ``deviceConfigId`` -1)."""
    return sorted((nic for nic in item.props.get("guest.net") or ()
                   if nic.deviceConfigId is not None and nic.deviceConfigId >= 0
                   and nic.macAddress),
                  key=lambda nic: nic.deviceConfigId)


def needs_devices(item: Item) -> bool:
    """Whether a VM read lean (:data:`.inventory.LEAN_VM`) lacks what its device list would
    tell: its guest reports fewer NICs than it has (no VMware Tools running, powered off)."""
    if "config.hardware.device" in item.props:
        return False
    return len(_guest_nics(item)) < int(item.props.get("summary.config.numEthernetCards") or 0)


def macs_and_disks(item: Item) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The VM's MACs and disk files, from its device list when it was read, else from what
    its guest reports and its file layout (the first file of a disk is the one attached)."""
    vim, _ = pyvmomi()
    if "config.hardware.device" in item.props or "layout.disk" not in item.props:
        macs = tuple(device.macAddress for device in devices(item)
                     if isinstance(device, vim.vm.device.VirtualEthernetCard) and device.macAddress)
        return macs, tuple(disk_file(disk) for disk in disks(item))
    layout = sorted(item.props.get("layout.disk") or (), key=lambda disk: disk.key)
    return (tuple(nic.macAddress for nic in _guest_nics(item)),
            tuple(disk.diskFile[0] for disk in layout if disk.diskFile))


def to_machine(item: Item, inventory: Inventory, platform: str) -> Machine:
    """A virtual machine of the inventory as a :class:`Machine` (its host, datastores, MACs)."""
    props = item.props
    host = inventory.by_id(props.get("runtime.host"))
    macs, disk_files = macs_and_disks(item)
    datastores = [inventory.by_id(ref) for ref in props.get("datastore") or ()]
    extra = {"moid": item.id, "host": host.name if host else None,
             "datastores": [ds.name for ds in datastores if ds is not None],
             "power_state": props.get("runtime.powerState")}
    if props.get("config.template"):
        extra["template"] = True
    if props.get("guest.hostName"):
        extra["guest_hostname"] = props["guest.hostName"]
    address = props.get("guest.ipAddress")
    return Machine(
        name=item.name, platform=platform, kind="virtual", uuid=props.get("config.uuid"),
        hardware=HardwareProfile(memory_mib=int(props.get("config.hardware.memoryMB") or 0),
                                 cpus=int(props.get("config.hardware.numCPU") or 0),
                                 platforms=("esx",)),
        power=POWER.get(str(props.get("runtime.powerState")), "unknown"),
        macs=macs, addresses=(address,) if address else (),
        disks=disk_files, extra=extra)


def scsi_controller(item: Item) -> Any | None:
    vim, _ = pyvmomi()
    return next((device for device in devices(item)
                 if isinstance(device, vim.vm.device.VirtualSCSIController)), None)


def new_scsi_controller(key: int = -100) -> Any:
    """A paravirtual SCSI controller on bus 0, to be added with the VM or the first disk."""
    vim, _ = pyvmomi()
    controller = vim.vm.device.ParaVirtualSCSIController(
        key=key, busNumber=0, sharedBus=vim.vm.device.VirtualSCSIController.Sharing.noSharing)
    return vim.vm.device.VirtualDeviceSpec(operation="add", device=controller)


def attach_disk_spec(path: str, size: int, controller_key: int, unit: int, key: int,
                     readonly: bool) -> Any:
    """Add the existing VMDK ``path`` ("[ds] folder/disk.vmdk") to a VM (no file operation:
    the disk is the pool's, not created here). A master's disk is attached so that writes go
    to a redo log thrown away at power off (independent, non-persistent)."""
    vim, _ = pyvmomi()
    backing = vim.vm.device.VirtualDisk.FlatVer2BackingInfo(
        fileName=path, diskMode="independent_nonpersistent" if readonly else "persistent")
    disk = vim.vm.device.VirtualDisk(key=key, controllerKey=controller_key, unitNumber=unit,
                                     capacityInKB=max(1, size // 1024), backing=backing)
    return vim.vm.device.VirtualDeviceSpec(operation="add", device=disk)


def remove_device_spec(device: Any) -> Any:
    """Take a device out of a VM, keeping its file (the pool's volume)."""
    vim, _ = pyvmomi()
    return vim.vm.device.VirtualDeviceSpec(operation="remove", device=device)


def nic_spec(network: str) -> Any:
    vim, _ = pyvmomi()
    nic = vim.vm.device.VirtualVmxnet3(
        key=-200, backing=vim.vm.device.VirtualEthernetCard.NetworkBackingInfo(deviceName=network),
        connectable=vim.vm.device.VirtualDevice.ConnectInfo(startConnected=True, connected=True))
    return vim.vm.device.VirtualDeviceSpec(operation="add", device=nic)
