"""The whole inventory in one PropertyCollector round trip.

``RetrievePropertiesEx`` over a ``ContainerView`` of the datacenter (or of the root folder)
returns every datacenter, cluster, host, datastore, network and virtual machine with just the
properties asked for, paged by ``ContinueRetrievePropertiesEx`` when the server cuts the answer
short. pyvmomi's attribute access (``vm.runtime.powerState``) would cost one round trip per
property per object instead, and reads unset properties that crash vcsim 0.24.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import attrs

from .connection import Session, pyvmomi

#: The properties read of each type (by type name in ``pyVmomi.vim``).
PROPERTIES: dict[str, tuple[str, ...]] = {
    "Datacenter": ("name",),
    "ClusterComputeResource": ("name", "host", "resourcePool"),
    "ComputeResource": ("name", "host", "resourcePool"),
    "HostSystem": ("name", "parent", "datastore", "runtime.connectionState"),
    "Datastore": ("name", "summary.url", "summary.capacity", "summary.freeSpace",
                  "summary.accessible"),
    "Network": ("name",),
    "VirtualMachine": ("name", "config.uuid", "config.template", "config.hardware.numCPU",
                       "config.hardware.memoryMB", "config.hardware.device", "runtime.powerState",
                       "runtime.host", "datastore", "resourcePool", "guest.hostName",
                       "guest.ipAddress"),
}

#: What discovery reads of a VM instead of its device list, whose deserialization by pyvmomi
#: is most of the time of a large inventory (4.3 s of 5.5 s for 500 VMs): the NICs the guest
#: reports (``guest.net``, with VMware Tools running), the disks' files (``layout.disk``), and
#: how many NICs the VM has, to tell when the guest's list falls short (then the device lists
#: of those VMs alone are read, in one more round trip: :meth:`Collector.with_devices`).
LEAN_VM = (*(p for p in PROPERTIES["VirtualMachine"] if p != "config.hardware.device"),
           "guest.net", "layout.disk", "summary.config.numEthernetCards")

#: Objects per page of the answer.
PAGE = 1000


@attrs.frozen
class Item:
    """One managed object: its reference (usable for calls) and the properties read."""

    ref: Any
    kind: str
    props: dict[str, Any]

    @property
    def id(self) -> str:
        return self.ref._moId

    @property
    def name(self) -> str:
        return self.props.get("name", "")


@attrs.frozen
class Inventory:
    """Every object read, by type name and by managed object id."""

    items: tuple[Item, ...]

    def of(self, kind: str) -> list[Item]:
        return [item for item in self.items if item.kind == kind]

    def by_id(self, ref: Any) -> Item | None:
        """The item of a managed object reference (``runtime.host``, ``parent``...)."""
        if ref is None:
            return None
        wanted = ref._moId
        return next((item for item in self.items if item.id == wanted), None)

    def named(self, kind: str, name: str) -> Item | None:
        return next((item for item in self.of(kind) if item.name == name), None)

    @property
    def machines(self) -> list[Item]:
        return self.of("VirtualMachine")

    @property
    def hosts(self) -> list[Item]:
        return self.of("HostSystem")

    @property
    def datastores(self) -> list[Item]:
        return self.of("Datastore")

    def compute_resource(self, host: Item) -> Item | None:
        """The cluster or standalone compute resource a host belongs to."""
        return self.by_id(host.props.get("parent"))


class Collector:
    """Reads inventories of one session, keeping its container view between reads."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._view: Any = None
        self._view_of: Any = None  # the login the view belongs to

    def _container(self) -> Any:
        if self._view is None or self._view_of is not self.session.service:
            self._view_of = self.session.service
            vim, _ = pyvmomi()
            content = self.session.content
            root = content.rootFolder
            name = self.session.datacenter_name
            if name:
                found = self.session.call(f"find datacenter '{name}'",
                                          content.searchIndex.FindByInventoryPath, name)
                if found is None:
                    from encompass_core.errors import NotFound

                    raise NotFound(f"{self.session.owner}: {self.session.where} has no datacenter "
                                   f"'{name}' (the datacenter setting)")
                root = found
            types = [getattr(vim, kind) for kind in PROPERTIES]
            self._view = self.session.call("list the inventory", content.viewManager.CreateContainerView,
                                           root, types, True)
        return self._view

    def read(self, kinds: tuple[str, ...] | None = None, lean: bool = False) -> Inventory:
        """The inventory: one round trip, plus one per further page of a large answer.
        ``lean``: VMs without their device lists (:data:`LEAN_VM`)."""
        vim, vmodl = pyvmomi()
        collector = vmodl.query.PropertyCollector
        view = self._container()
        wanted = kinds or tuple(PROPERTIES)

        def paths(kind: str) -> list[str]:
            return list(LEAN_VM if lean and kind == "VirtualMachine" else PROPERTIES[kind])

        spec = collector.FilterSpec(
            objectSet=[collector.ObjectSpec(obj=view, skip=True, selectSet=[collector.TraversalSpec(
                name="view", path="view", skip=False, type=vim.view.ContainerView)])],
            propSet=[collector.PropertySpec(type=getattr(vim, kind), pathSet=paths(kind))
                     for kind in wanted],
        )
        return Inventory(tuple(self._retrieve(spec)))

    def with_devices(self, inventory: Inventory, machines: list[Item]) -> Inventory:
        """``inventory`` with the device lists of ``machines`` read (one round trip for all)."""
        if not machines:
            return inventory
        vim, vmodl = pyvmomi()
        collector = vmodl.query.PropertyCollector
        spec = collector.FilterSpec(
            objectSet=[collector.ObjectSpec(obj=item.ref, skip=False) for item in machines],
            propSet=[collector.PropertySpec(type=vim.VirtualMachine,
                                            pathSet=["config.hardware.device"])])
        found = {item.id: item.props for item in self._retrieve(spec)}
        return Inventory(tuple(
            attrs.evolve(item, props={**item.props, **found[item.id]}) if item.id in found else item
            for item in inventory.items))

    def _retrieve(self, spec: Any) -> list[Item]:
        _, vmodl = pyvmomi()
        pc = self.session.content.propertyCollector
        return self.session.call("list the inventory", lambda: list(
            self._pages(pc, spec, vmodl.query.PropertyCollector)))

    def _pages(self, pc: Any, spec: Any, collector: Any) -> Iterator[Item]:
        result = pc.RetrievePropertiesEx([spec], collector.RetrieveOptions(maxObjects=PAGE))
        while result is not None:
            for found in result.objects:
                kind = type(found.obj).__name__.rsplit(".", 1)[-1]
                yield Item(found.obj, kind, {prop.name: prop.val for prop in found.propSet or ()})
            if not result.token:
                break
            result = pc.ContinueRetrievePropertiesEx(result.token)

    def forget(self) -> None:
        """Drop the view (after the session was lost, the view went with it)."""
        self._view = None
