"""The esx platform against vcsim: the inventory in one round trip, power, reconfigure,
migrate, a task that fails, and the errors a user reads (wrong password, an untrusted
certificate, a server that stops)."""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path
from types import SimpleNamespace

import attrs
import pytest
from encompass_esx import devices
from encompass_esx.connection import pyvmomi
from encompass_esx.inventory import PAGE, Collector, Inventory
from vcsim_testing import PASSWORD, platform_driver, start_vcsim

from encompass_core.contracts import Attachment, AttachRequest, CloneProgress
from encompass_core.errors import DriverError, InvalidInput, NotFound
from encompass_core.model import HardwareProfile, Image
from encompass_core.records import CloneRequest
from encompass_core.testing import make_source_image


def one_line(error: BaseException) -> str:
    message = str(error)
    assert message and "\n" not in message and "Traceback" not in message
    return message


@pytest.fixture
def image() -> Image:
    return Image(name="app01", kind="clone", state="ready",
                 hardware=HardwareProfile(memory_mib=256, cpus=1))


@pytest.fixture
def machine(platform, image, request):
    name = "t-" + request.node.name[5:30].replace("_", "-").strip("-")
    made = platform.create_machine(name, image)
    yield made
    platform.destroy_machine(made)


def test_the_inventory_is_one_round_trip_with_what_a_machine_is(platform):
    platform.discover()  # the first read logs in and makes the container view
    before = platform.session.round_trips
    machines = {machine.name: machine for machine in platform.discover()}
    assert platform.session.round_trips - before == 1
    vm = machines["DC0_H0_VM0"]
    assert vm.kind == "virtual" and vm.platform == "vc"
    assert vm.uuid and len(vm.uuid) == 36
    assert vm.macs and all(len(mac.split(":")) == 6 for mac in vm.macs)
    assert (vm.hardware.cpus, vm.hardware.memory_mib) == (1, 32)
    assert vm.power == "on" and vm.extra["host"] == "DC0_H0"
    assert vm.disks == ("[LocalDS_0] DC0_H0_VM0/disk1.vmdk",)
    assert machines["DC0_C0_RP0_VM0"].extra["host"].startswith("DC0_C0_H")


def test_discovery_reads_no_device_lists_unless_a_guest_hides_its_nics(platform):
    full = platform.collector.read()
    lean = platform.collector.read(lean=True)
    assert all("config.hardware.device" not in item.props for item in lean.machines)
    for item in full.machines:  # the guests' NICs and the disk layout say what the devices do
        assert devices.macs_and_disks(lean.named("VirtualMachine", item.name)) == \
            devices.macs_and_disks(item)
    assert any(devices.macs_and_disks(item)[0] for item in full.machines)
    assert not any(devices.needs_devices(item) for item in lean.machines)

    # A guest without VMware Tools reports no NIC: that VM's device list alone is read.
    quiet = next(item for item in lean.machines if devices.macs_and_disks(item)[0])
    silent = attrs.evolve(quiet, props={**quiet.props, "guest.net": []})
    assert devices.needs_devices(silent) and devices.macs_and_disks(silent)[0] == ()
    inventory = Inventory(tuple(silent if item is quiet else item for item in lean.items))
    before = platform.session.round_trips
    filled = platform.collector.with_devices(inventory, [silent])
    assert platform.session.round_trips - before == 1
    again = filled.named("VirtualMachine", quiet.name)
    assert "config.hardware.device" in again.props and not devices.needs_devices(again)
    assert devices.macs_and_disks(again) == devices.macs_and_disks(full.named("VirtualMachine",
                                                                             quiet.name))


class _PagingCollector:
    """A PropertyCollector answering in pages, as vCenter does past ``maxObjects`` (vcsim 0.24
    answers everything at once and has no ``ContinueRetrievePropertiesEx``)."""

    def __init__(self, pages):
        self.pages = list(pages)
        self.calls = []

    def _page(self, index):
        objects, last = self.pages[index], index == len(self.pages) - 1
        return SimpleNamespace(objects=objects, token=None if last else f"token-{index + 1}")

    def RetrievePropertiesEx(self, specs, options):  # noqa: N802 - vSphere's name
        self.calls.append(("first", options.maxObjects))
        return self._page(0)

    def ContinueRetrievePropertiesEx(self, token):  # noqa: N802 - vSphere's name
        self.calls.append(("continue", token))
        return self._page(int(token.rsplit("-", 1)[1]))


def test_a_paged_answer_is_read_to_its_last_page():
    vim, _ = pyvmomi()

    def found(name):
        return SimpleNamespace(obj=vim.VirtualMachine(name), propSet=[
            SimpleNamespace(name="name", val=name)])

    pages = [[found("vm-1"), found("vm-2")], [found("vm-3")], [found("vm-4")]]
    fake = _PagingCollector(pages)
    items = list(Collector(session=None)._pages(fake, spec=None, collector=vmodl_collector()))
    assert [item.name for item in items] == ["vm-1", "vm-2", "vm-3", "vm-4"]
    assert [item.kind for item in items] == ["VirtualMachine"] * 4
    assert fake.calls == [("first", PAGE), ("continue", "token-1"), ("continue", "token-2")]


def vmodl_collector():
    _, vmodl = pyvmomi()
    return vmodl.query.PropertyCollector


def test_a_created_machine_fits_the_profile_and_is_reset_reconfigured_and_migrated(platform, machine,
                                                                                image):
    assert (machine.hardware.cpus, machine.hardware.memory_mib, machine.power) == (1, 256, "off")
    assert platform.power(machine, "on").power == "on"
    assert platform.power(machine, "reset").power == "on"
    bigger = platform.reconfigure(machine, HardwareProfile(memory_mib=1024, cpus=2))
    assert (bigger.hardware.cpus, bigger.hardware.memory_mib) == (2, 1024)
    moved = platform.migrate(machine, image, {"host": "DC0_C0_H2", "datastore": "LocalDS_1"})
    listed = next(m for m in platform.discover() if m.name == machine.name)
    assert moved.extra["host"] == listed.extra["host"] == "DC0_C0_H2"
    assert listed.extra["datastores"] == ["LocalDS_1"] and listed.power == "on"
    assert platform.power(machine, "off").power == "off"


def test_migrating_to_a_host_that_does_not_exist_is_refused(platform, machine, image):
    with pytest.raises(NotFound) as refused:
        platform.migrate(machine, image, {"host": "no-such-host"})
    assert "no-such-host" in one_line(refused.value)


def test_a_failed_task_says_what_vsphere_said_and_leaves_the_machine(platform, machine, image):
    missing = "[LocalDS_0] nowhere/vol0.vmdk"
    with pytest.raises(DriverError) as refused:
        platform.deploy(machine, image, [Attachment(index=0, kind="datastore", address=missing,
                                                    format="vmdk", boot=True)])
    message = one_line(refused.value)
    assert "platform 'vc'" in message and "FileNotFound" in message and "nowhere/vol0" in message
    after = next(m for m in platform.discover() if m.name == machine.name)
    assert (after.power, after.disks) == ("off", ())


def test_a_wrong_password_is_one_line_without_the_password(vcsim, tmp_path, monkeypatch):
    monkeypatch.setenv("VCSIM_PASSWORD", "not-the-password")
    driver = platform_driver(tmp_path, vcsim.settings())
    with pytest.raises(DriverError) as refused:
        driver.discover()
    message = one_line(refused.value)
    assert "refused the login of user 'user'" in message and "not-the-password" not in message


def test_a_certificate_that_does_not_verify_is_refused_unless_the_platform_opts_out(vcsim, tmp_path):
    untrusted = {key: value for key, value in vcsim.settings().items() if key != "ca_file"}
    with pytest.raises(DriverError) as refused:
        platform_driver(tmp_path, untrusted).discover()
    message = one_line(refused.value)
    assert "certificate" in message and "not trusted" in message and "verify_tls = false" in message
    opted_out = platform_driver(tmp_path, {**untrusted, "verify_tls": False})
    assert "DC0_H0_VM0" in [machine.name for machine in opted_out.discover()]
    opted_out.close()


def test_a_server_that_stops_mid_operation_is_one_clear_line(vcsim_program, image):
    os.environ["VCSIM_PASSWORD"] = PASSWORD
    with tempfile.TemporaryDirectory(prefix="enc-vcsim-stop-") as folder:
        with start_vcsim(Path(folder) / "vcsim", machines=1) as server:
            driver = platform_driver(Path(folder), server.settings())
            vm = next(m for m in driver.discover() if m.name == "DC0_H0_VM0")
            server.stop()  # between two calls of one session, as a crash would
            with pytest.raises(DriverError) as refused:
                driver.power(vm, "off")
            message = one_line(refused.value)
            assert "platform 'vc'" in message and f"127.0.0.1:{server.port}" in message
            with pytest.raises(DriverError) as again:  # and the next call says the same
                driver.discover()
            assert "connection refused" in one_line(again.value)


def test_a_server_that_dies_while_a_task_is_under_way_is_one_clear_line(vcsim_program):
    os.environ["VCSIM_PASSWORD"] = PASSWORD
    with tempfile.TemporaryDirectory(prefix="enc-vcsim-crash-") as folder, \
            start_vcsim(Path(folder) / "vcsim", machines=1,
                        extra={"slow": "PowerOnVM_Task=30000"}) as server:
        driver = platform_driver(Path(folder), server.settings())
        vm = next(m for m in driver.discover() if m.name == "DC0_H0_VM0")
        driver.power(vm, "off")
        # The power-on call waits 30 s for its answer; the server dies 1 s into it.
        crash = threading.Timer(1.0, server.crash)
        crash.start()
        try:
            with pytest.raises(DriverError) as refused:
                driver.power(vm, "on")
        finally:
            crash.cancel()
        message = one_line(refused.value)
        assert message.startswith("platform 'vc': cannot power on VM 'DC0_H0_VM0'")
        assert f"127.0.0.1:{server.port}" in message


def test_a_hostname_and_address_are_handed_to_a_vsphere_customization_spec(vcsim, tmp_path, image):
    driver = platform_driver(tmp_path, vcsim.settings(network="VM Network"))
    made = driver.create_machine("t-guest-spec", image)
    try:
        assert len(made.macs) == 1  # the NIC the spec's address goes to
        driver.customize(made, image, {"hostname": "web01", "ip": "10.0.0.5",
                                       "netmask": "255.255.255.0", "gateway": "10.0.0.1"})
        running = driver.power(made, "on")  # the guest applies it as it starts
        assert running.extra["guest_hostname"] == "web01" and running.addresses == ("10.0.0.5",)
        with pytest.raises(DriverError) as refused:  # a running VM: vSphere's own refusal
            driver.customize(made, image, {"hostname": "web02"})
        assert "InvalidPowerState" in one_line(refused.value)
        with pytest.raises(InvalidInput):
            driver.customize(made, image, {"hostname": "web02", "password": "x"})
    finally:
        driver.destroy_machine(made)
        driver.close()


def test_an_existing_vm_is_adopted_and_keeps_its_own_disk(platform, pool, tmp_path):
    master = pool.import_volume("adopt-master", 0, make_source_image(tmp_path / "m.raw"))
    volume = pool.clone_volume(master, pool, CloneRequest("adopted", 0, "full", 8, "adopt-master"),
                               CloneProgress())
    image = Image(name="adopted", kind="clone", state="deploying", volumes=(volume,))
    vm = next(m for m in platform.discover() if m.name == "DC0_C0_RP0_VM1")
    attached = pool.attach(volume, vm, AttachRequest(kinds=("datastore",), boot=True))
    deployed = platform.deploy(vm, image, [attached])
    assert deployed.power == "on"
    assert deployed.disks == ("[LocalDS_0] DC0_C0_RP0_VM1/disk1.vmdk", volume.location)
    undeployed = platform.undeploy(deployed, image)
    assert undeployed.disks == ("[LocalDS_0] DC0_C0_RP0_VM1/disk1.vmdk",)
    assert undeployed.power == "off"
    assert pool.files.exists(volume.location.removeprefix("[LocalDS_0] "))  # the VMDK stays
