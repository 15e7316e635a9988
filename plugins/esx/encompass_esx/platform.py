"""The ``esx`` platform driver: the virtual machines of a vCenter or a standalone ESX host.

Every read is one PropertyCollector round trip over the whole inventory (:mod:`.inventory`);
every change is a vSphere task awaited with a timeout (:mod:`.tasks`). Machines take their
volumes as VMDKs on a datastore (the esx pool's ``datastore`` attachments) and boot from disk.
"""

from __future__ import annotations

from typing import Any

import attrs

from encompass_core.config import Config, Section
from encompass_core.contracts import Attachment, PlatformCapabilities, PlatformDriver
from encompass_core.errors import Conflict, InvalidInput, NotFound, NotSupported
from encompass_core.model import HardwareProfile, Image, Machine

from . import devices, guest, tasks
from .connection import Session, pyvmomi
from .inventory import Collector, Inventory, Item

POWER_ACTIONS = ("on", "off", "reset")


class EsxPlatformDriver(PlatformDriver):
    """The VMs of one vCenter (or ESX host), reached through pyvmomi."""

    capabilities = PlatformCapabilities(
        kind="virtual", attach_kinds=("datastore",), boot_modes=("disk",), create_machines=True,
        boot_device=(), migrate=True, reconfigure=True, customize=True)

    def __init__(self, section: Section, config: Config) -> None:
        self.platform = section.name
        self.session = Session(section, config, f"platform '{self.platform}'")
        self.collector = Collector(self.session)
        settings = section.settings
        self.datastore_name: str | None = settings.get("datastore")
        self.host_name: str | None = settings.get("host_system")
        self.network: str | None = settings.get("network")
        self.guest_id: str = settings.get("guest_id") or "otherLinux64Guest"
        if settings.get("guest_customization") is False:
            # Guests without VMware Tools cannot apply a spec: the core customizes files.
            self.capabilities = attrs.evolve(self.capabilities, customize=False)

    # -- reading -------------------------------------------------------------------------------
    def inventory(self) -> Inventory:
        return self.collector.read()

    def discover(self) -> list[Machine]:
        """Every VM (templates included, marked ``extra['template']``), in one round trip
        without device lists (pyvmomi's slowest part), plus one for the device lists of the
        VMs whose guests do not report all their NICs."""
        inventory = self.collector.read(lean=True)
        inventory = self.collector.with_devices(
            inventory, [item for item in inventory.machines if devices.needs_devices(item)])
        return [devices.to_machine(item, inventory, self.platform) for item in inventory.machines]

    def resources(self) -> dict[str, list[dict[str, Any]]]:
        """The datacenters, clusters, hosts, datastores and networks, by kind (one round trip)."""
        inventory = self.inventory()
        gib = 1 << 30

        def datastore(item: Item) -> str:
            props = item.props
            return (f"{(props.get('summary.freeSpace') or 0) / gib:.1f} of "
                    f"{(props.get('summary.capacity') or 0) / gib:.1f} GiB free"
                    + ("" if props.get("summary.accessible", True) else ", not accessible"))

        def host(item: Item) -> str:
            compute = inventory.compute_resource(item)
            where = f"in {compute.name}" if compute and compute.kind == "ClusterComputeResource" \
                else "standalone"
            return f"{where}, {item.props.get('runtime.connectionState')}"

        def members(item: Item) -> str:
            names = [inventory.by_id(ref) for ref in item.props.get("host") or ()]
            return "hosts " + ", ".join(found.name for found in names if found)

        def network(item: Item) -> str:
            return "distributed port group" if item.kind == "DistributedVirtualPortgroup" else \
                "opaque (NSX)" if item.kind == "OpaqueNetwork" else "standard port group"

        details = {"datacenters": (("Datacenter",), None),
                   "clusters": (("ClusterComputeResource",), members),
                   "hosts": (("HostSystem",), host), "datastores": (("Datastore",), datastore),
                   "networks": (("Network", "DistributedVirtualPortgroup", "OpaqueNetwork"), network)}
        return {label: [{"name": item.name, "details": describe(item) if describe else ""}
                        for kind in kinds for item in inventory.of(kind)]
                for label, (kinds, describe) in details.items()}

    def _find(self, name: str, inventory: Inventory | None = None) -> tuple[Item, Inventory]:
        inventory = inventory or self.inventory()
        item = inventory.named("VirtualMachine", name)
        if item is None:
            raise NotFound(f"platform '{self.platform}' has no virtual machine '{name}' "
                           f"(encompass machine list)")
        return item, inventory

    def _machine(self, name: str) -> Machine:
        item, inventory = self._find(name)
        return devices.to_machine(item, inventory, self.platform)

    def _task(self, action: str, start: Any) -> Any:
        return tasks.run(self.session, action, start)

    # -- power -----------------------------------------------------------------------------------
    def power(self, machine: Machine, action: str) -> Machine:
        if action not in POWER_ACTIONS:
            raise InvalidInput(f"unknown power action '{action}': use {', '.join(POWER_ACTIONS)}")
        item, _ = self._find(machine.name)
        self._power(item, action)
        return self._machine(machine.name)

    def _power(self, item: Item, action: str) -> None:
        state = item.props.get("runtime.powerState")
        what = f"power {action} VM '{item.name}'"
        if action == "on" and state != "poweredOn":
            self._task(what, item.ref.PowerOnVM_Task)
        elif action == "off" and state != "poweredOff":
            self._task(what, item.ref.PowerOffVM_Task)
        elif action == "reset":
            if state != "poweredOn":  # a reset of a machine that is off starts it
                self._task(what, item.ref.PowerOnVM_Task)
            else:
                self._task(what, item.ref.ResetVM_Task)

    # -- machines ------------------------------------------------------------------------------
    def _placement(self, inventory: Inventory) -> tuple[Item, Item, Item]:
        """The host, its compute resource and the datastore a new VM goes to."""
        hosts = inventory.hosts
        host = inventory.named("HostSystem", self.host_name) if self.host_name else \
            (hosts[0] if hosts else None)
        if host is None:
            raise NotFound(f"platform '{self.platform}' has no host "
                           f"'{self.host_name or '(any)'}' (the host_system setting)")
        compute = inventory.compute_resource(host)
        if self.datastore_name:
            datastore = inventory.named("Datastore", self.datastore_name)
        else:
            datastore = inventory.by_id(next(iter(host.props.get("datastore") or ()), None))
        if datastore is None:
            raise NotFound(f"platform '{self.platform}' has no datastore "
                           f"'{self.datastore_name or '(any)'}' for new VMs (the datastore setting)")
        return host, compute, datastore

    def create_machine(self, name: str, image: Image) -> Machine:
        """A VM fitting the image's hardware profile (CPUs, memory, firmware), with a SCSI
        controller and no disk: deploy attaches the image's."""
        vim, _ = pyvmomi()
        inventory = self.inventory()
        if inventory.named("VirtualMachine", name) is not None:
            raise Conflict(f"platform '{self.platform}' has a virtual machine '{name}' already")
        host, compute, datastore = self._placement(inventory)
        hardware = image.hardware
        changes = [devices.new_scsi_controller()]
        if self.network:
            changes.append(devices.nic_spec(self.network))
        spec = vim.vm.ConfigSpec(
            name=name, memoryMB=hardware.memory_mib, numCPUs=hardware.cpus, guestId=self.guest_id,
            firmware="efi" if hardware.firmware == "uefi" else "bios",
            files=vim.vm.FileInfo(vmPathName=f"[{datastore.name}]"), deviceChange=changes,
            annotation=f"Made by Encompass for image '{image.name}'")
        folder = self._vm_folder()
        pool = compute.props.get("resourcePool") if compute else None
        self._task(f"create VM '{name}'", lambda: folder.CreateVM_Task(
            config=spec, pool=pool, host=host.ref))
        return self._machine(name)

    def _vm_folder(self) -> Any:
        inventory = self.collector.read(("Datacenter",))
        datacenters = inventory.of("Datacenter")
        wanted = self.session.datacenter_name
        datacenter = next((dc for dc in datacenters if dc.name == wanted), None) if wanted else \
            (datacenters[0] if datacenters else None)
        if datacenter is None:
            # A view rooted at the datacenter does not hold the datacenter itself.
            content = self.session.content
            datacenter_ref = self.session.call("find the datacenter",
                                               content.searchIndex.FindByInventoryPath, wanted or "")
            if datacenter_ref is None:
                raise NotFound(f"platform '{self.platform}' has no datacenter to create VMs in")
            return self.session.call("find the VM folder", lambda: datacenter_ref.vmFolder)
        return self.session.call("find the VM folder", lambda: datacenter.ref.vmFolder)

    def destroy_machine(self, machine: Machine) -> None:
        """Power the VM off and remove it; the disks of images attached to it are taken out
        first, so destroying the VM never deletes a pool's volume."""
        try:
            item, _ = self._find(machine.name)
        except NotFound:
            return
        self._power(item, "off")
        foreign = [disk for disk in devices.disks(item) if not self._own_disk(item, disk)]
        if foreign:
            self._reconfigure(item, [devices.remove_device_spec(disk) for disk in foreign],
                              f"take the image's disks out of VM '{item.name}'")
        self._task(f"remove VM '{item.name}'", item.ref.Destroy_Task)

    @staticmethod
    def _own_disk(item: Item, disk: Any) -> bool:
        """A disk in the VM's own folder ("[ds] NAME/..."), made with it."""
        path = devices.disk_file(disk)
        return path.partition("] ")[2].startswith(f"{item.name}/")

    def _reconfigure(self, item: Item, changes: list[Any], action: str, **config: Any) -> None:
        vim, _ = pyvmomi()
        spec = vim.vm.ConfigSpec(deviceChange=changes, **config)
        self._task(action, lambda: item.ref.ReconfigVM_Task(spec=spec))

    # -- deploy ----------------------------------------------------------------------------------
    def deploy(self, machine: Machine, image: Image, attachments: list[Attachment]) -> Machine:
        """Attach the image's VMDKs (the boot one first in the boot order) and power on. A
        failure takes the disks out again, so the VM is left as it was."""
        foreign = sorted({a.kind for a in attachments} - set(self.capabilities.attach_kinds))
        if foreign:
            raise NotSupported(f"platform '{self.platform}' takes VMDKs on a datastore, not "
                               f"{', '.join(foreign)} volumes; clone the image into an esx pool")
        item, _ = self._find(machine.name)
        present = {devices.disk_file(disk) for disk in devices.disks(item)}
        wanted = [a for a in sorted(attachments, key=lambda a: (not a.boot, a.index))
                  if a.address not in present]
        if wanted:
            self._attach(item, wanted, image)
        try:
            item, _ = self._find(machine.name)
            self._boot_order(item, attachments)
            self._power(item, "on")
        except Exception:
            self._detach(self._find(machine.name)[0], {a.address for a in wanted})
            raise
        return self._machine(machine.name)

    def _attach(self, item: Item, wanted: list[Attachment], image: Image) -> None:
        changes = []
        controller = devices.scsi_controller(item)
        if controller is None:
            changes.append(devices.new_scsi_controller())
            controller_key, used = -100, set()
        else:
            controller_key = controller.key
            used = {disk.unitNumber for disk in devices.disks(item)
                    if disk.controllerKey == controller_key}
        free = [unit for unit in devices.SCSI_UNITS if unit not in used]
        if len(free) < len(wanted):
            raise Conflict(f"platform '{self.platform}': VM '{item.name}' has no free SCSI slot for "
                           f"{len(wanted)} more disks")
        sizes = {volume.index: volume.size for volume in image.volumes}
        for key, (attachment, unit) in enumerate(zip(wanted, free, strict=False), start=1):
            changes.append(devices.attach_disk_spec(
                attachment.address, sizes.get(attachment.index, 0), controller_key, unit, -key,
                attachment.readonly))
        self._reconfigure(item, changes, f"attach image '{image.name}' to VM '{item.name}'")

    def _boot_order(self, item: Item, attachments: list[Attachment]) -> None:
        vim, _ = pyvmomi()
        boot = next((a for a in attachments if a.boot), None)
        disk = next((d for d in devices.disks(item) if boot and devices.disk_file(d) == boot.address),
                    None)
        if disk is None:
            return
        order = [vim.vm.BootOptions.BootableDiskDevice(deviceKey=disk.key)]
        self._reconfigure(item, [], f"boot VM '{item.name}' from its disk",
                          bootOptions=vim.vm.BootOptions(bootOrder=order))

    def _detach(self, item: Item, addresses: set[str]) -> None:
        doomed = [disk for disk in devices.disks(item) if devices.disk_file(disk) in addresses]
        if doomed:
            self._reconfigure(item, [devices.remove_device_spec(disk) for disk in doomed],
                              f"take the image's disks out of VM '{item.name}'")

    def undeploy(self, machine: Machine, image: Image) -> Machine:
        """Power off and take the image's VMDKs out of the VM (the files stay in the pool)."""
        item, _ = self._find(machine.name)
        self._power(item, "off")
        item, _ = self._find(machine.name)
        self._detach(item, {volume.location for volume in image.volumes})
        return self._machine(machine.name)

    # -- migrate, reconfigure --------------------------------------------------------------------
    def migrate(self, machine: Machine, image: Image, target: dict[str, Any]) -> Machine:
        """Relocate the VM to ``target['host']`` and/or ``target['datastore']`` (names), running
        or not (vMotion, Storage vMotion)."""
        vim, _ = pyvmomi()
        unknown = sorted(set(target) - {"host", "datastore"})
        if unknown or not target:
            raise InvalidInput(f"platform '{self.platform}': migrate to a host and/or a datastore "
                               f"(got {', '.join(unknown) or 'nothing'})")
        item, inventory = self._find(machine.name)
        spec = vim.vm.RelocateSpec()
        if target.get("host"):
            host = inventory.named("HostSystem", target["host"])
            if host is None:
                raise NotFound(f"platform '{self.platform}' has no host '{target['host']}'")
            spec.host = host.ref
            compute = inventory.compute_resource(host)
            current = inventory.compute_resource(inventory.by_id(item.props.get("runtime.host")) or host)
            if compute is not None and (current is None or compute.id != current.id):
                spec.pool = compute.props.get("resourcePool")
        if target.get("datastore"):
            datastore = inventory.named("Datastore", target["datastore"])
            if datastore is None:
                raise NotFound(f"platform '{self.platform}' has no datastore '{target['datastore']}'")
            spec.datastore = datastore.ref
            # The images' VMDKs are the pools': they stay where their pool keeps them; only the
            # VM's own files move (Storage vMotion would otherwise move every disk).
            spec.disk = [vim.vm.RelocateSpec.DiskLocator(diskId=disk.key,
                                                         datastore=disk.backing.datastore)
                         for disk in devices.disks(item)
                         if not self._own_disk(item, disk) and disk.backing.datastore is not None]
        where = " and ".join(f"{key} '{value}'" for key, value in target.items() if value)
        self._task(f"move VM '{item.name}' to {where}", lambda: item.ref.RelocateVM_Task(spec=spec))
        return self._machine(machine.name)

    def reconfigure(self, machine: Machine, hardware: HardwareProfile) -> Machine:
        """Set the VM's CPUs and memory (vSphere refuses what the VM's state does not allow)."""
        item, _ = self._find(machine.name)
        self._reconfigure(item, [], f"give VM '{item.name}' {hardware.cpus} CPUs and "
                                    f"{hardware.memory_mib} MiB", numCPUs=hardware.cpus,
                          memoryMB=hardware.memory_mib)
        return self._machine(machine.name)

    def customize(self, machine: Machine, image: Image, spec: dict[str, Any]) -> None:
        """Hand a hostname and addresses (:data:`.guest.KEYS`) to a vSphere customization spec,
        applied when the VM next powers on. The VM must be off (vSphere refuses otherwise)."""
        guest.check(spec, self.platform)
        item, _ = self._find(machine.name)
        vim, _ = pyvmomi()
        nics = sum(isinstance(device, vim.vm.device.VirtualEthernetCard)
                   for device in devices.devices(item))
        specification = guest.specification(spec, nics)
        self._task(f"customize VM '{item.name}' as '{spec['hostname']}'",
                   lambda: item.ref.CustomizeVM_Task(spec=specification))

    def close(self) -> None:
        self.session.close()

    shutdown = close
