"""Migration, reassignment, swap and resize through the operations, on libvirt's test driver with
a Xen host (its state lives in one connection, so one Context drives it, as one command would),
and from a real KVM daemon to that Xen host (the definition made there validates).

Clones are real (an ext4 master in the local pool); a hardware-dependent item is really
written into the clone's volume again for the machine it moves to.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from libvirt_testing import DATA, add_platform
from test_libvirt_xen import validate

from encompass_core.context import Context
from encompass_core.customization.items import build_item
from encompass_core.customization.volumes import open_image_volume
from encompass_core.errors import Conflict, DriverError
from encompass_core.operations import clone, customize, deploy, importing, master_items, migrate, reassign
from encompass_core.operations.history import where_it_ran

XEN = f"test://{DATA / 'xen-host.xml'}"


def make_master(path: Path) -> Path:
    subprocess.run(["truncate", "-s", "16M", str(path)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(path)], check=True)
    return path


@pytest.fixture
def ctx(home: Path, tmp_path: Path):
    """A Context on a home with the Xen test host; master ``base`` with a hardware-dependent
    item ``nic`` (/etc/nic) and clones web01..web03 of it, customized."""
    add_platform(home, "xen", {"driver": "xen", "uri": XEN, "shutdown_timeout": 0})
    context = Context(home)
    importing.import_master(context, "base", [make_master(tmp_path / "base.raw")])
    master_items.add_item(context, "base", build_item({"key": "nic", "type": "file", "path": "/etc/nic",
                                                       "params": {"on": "hardware"}}))
    clone.clone_images(context, "base", ["web01", "web02", "web03"])
    customize.customize_images(context, ["web01", "web02", "web03"],
                               {n: {"nic": "eth0 of {machine}"} for n in ("web01", "web02", "web03")})
    yield context
    context.close()


def machine_vm(ctx: Context, name: str):
    """A new, empty Xen machine recorded in the store."""
    driver = ctx.platform("xen").driver
    with ctx.store.snapshot() as tx:
        image = tx.image("web01")
    made = driver.create_machine(name, image)
    with ctx.store.transaction() as tx:
        tx.put_machine(made)
    return made


def runs(ctx: Context, machine: str) -> str | None:
    """The clone whose volume machine's domain really uses (asked of libvirt), by location."""
    disks = {m.name: m.disks for m in ctx.platform("xen").driver.discover()}[machine]
    with ctx.store.snapshot() as tx:
        for image in tx.images(kind="clone"):
            if {v.location for v in image.volumes} & set(disks):
                return image.name
    return None


def nic(ctx: Context, name: str) -> bytes:
    with ctx.store.snapshot() as tx:
        image = tx.image(name)
    with open_image_volume(ctx, image, 0, None, writable=False) as files:
        return files.read("/etc/nic")


def test_migrate_moves_the_clone_and_applies_hardware_items_for_the_target(ctx):
    machine_vm(ctx, "vm1")
    machine_vm(ctx, "vm2")
    deploy.deploy(ctx, "web01", "vm1")

    moved = migrate.migrate(ctx, "web01", "vm2")

    assert (moved.state, moved.machine) == ("deployed", "vm2")
    assert runs(ctx, "vm2") == "web01" and runs(ctx, "vm1") is None
    assert nic(ctx, "web01") == b"eth0 of vm2\n"
    with ctx.store.snapshot() as tx:
        assert tx.find_machine("vm1").image is None and tx.find_machine("vm2").image == "web01"
        history = [e.message for e in tx.events("web01")]
    assert "undeployed from machine 'vm1' (platform 'xen')" in history
    assert any(m.startswith("hardware-dependent item(s) nic applied again") for m in history)
    assert "migrated from machine 'vm1' (platform 'xen') to 'vm2' (platform 'xen')" in history
    assert [(m, p) for _t, m, p in where_it_ran(ctx, "web01")] == [("vm1", "xen"), ("vm2", "xen")]


def test_deploy_writes_values_naming_the_machine_for_that_machine(ctx):
    machine_vm(ctx, "vm1")
    busy = machine_vm(ctx, "vm2")
    assert nic(ctx, "web01") == b"eth0 of {machine}\n"  # customize cannot know the machine

    deployed = deploy.deploy(ctx, "web01", "vm1")

    assert nic(ctx, "web01") == b"eth0 of vm1\n"
    assert deployed.inputs["nic"] == "eth0 of {machine}"  # kept, for the next machine
    with ctx.store.snapshot() as tx:
        assert any(e.message.endswith("; item(s) nic written for this machine") for e in tx.events("web01"))
    # A deploy refused once the item is written leaves the clone ready (not in error), with
    # files and records that agree.
    ctx.platform("xen").driver.power(busy, "on")
    with pytest.raises(Conflict, match="it is running"):
        deploy.deploy(ctx, "web02", "vm2")
    with ctx.store.snapshot() as tx:
        refused = tx.image("web02")
    assert (refused.state, refused.machine) == ("ready", None)
    assert nic(ctx, "web02") == b"eth0 of vm2\n"
    [again] = customize.customize_images(ctx, ["web02"], {"web02": {"nic": "eth0 of {machine}"}})
    assert again.state == "ready"


def test_a_migration_the_target_refuses_leaves_the_clone_where_it_was(ctx):
    machine_vm(ctx, "vm1")
    busy = machine_vm(ctx, "vm2")
    deploy.deploy(ctx, "web01", "vm1")
    ctx.platform("xen").driver.power(busy, "on")  # running outside Encompass: deploy refuses

    with pytest.raises(Conflict, match="it is running"):
        migrate.migrate(ctx, "web01", "vm2")

    with ctx.store.snapshot() as tx:
        image = tx.image("web01")
        assert (image.state, image.machine) == ("deployed", "vm1")
        assert tx.find_machine("vm2").image is None and tx.find_machine("vm1").image == "web01"
        assert any("deployed again on 'vm1'" in e.message for e in tx.events("web01"))
    assert runs(ctx, "vm1") == "web01"
    assert nic(ctx, "web01") == b"eth0 of vm1\n"


def test_migrate_refuses_before_touching_anything(ctx):
    machine_vm(ctx, "vm1")
    deploy.deploy(ctx, "web01", "vm1")
    with pytest.raises(Conflict, match="not deployed"):
        migrate.migrate(ctx, "web02", "vm1")
    with pytest.raises(Conflict, match="runs on machine 'vm1' already"):
        migrate.migrate(ctx, "web01", "vm1")
    machine_vm(ctx, "vm3")
    deploy.deploy(ctx, "web02", "vm3")
    with pytest.raises(Conflict, match="it runs 'web02'"):
        migrate.migrate(ctx, "web01", "vm3")
    with pytest.raises(Conflict, match="cannot move a running machine to another host"):
        migrate.migrate_live(ctx, "web01", "dom0-2")
    assert runs(ctx, "vm1") == "web01" and runs(ctx, "vm3") == "web02"


def test_swap_and_reassign_two_running_machines(ctx):
    machine_vm(ctx, "vm1")
    machine_vm(ctx, "vm2")
    deploy.deploy(ctx, "web01", "vm1")
    deploy.deploy(ctx, "web02", "vm2")

    reassign.swap(ctx, "vm1", "vm2")

    assert (runs(ctx, "vm1"), runs(ctx, "vm2")) == ("web02", "web01")
    with ctx.store.snapshot() as tx:
        assert (tx.image("web01").machine, tx.image("web02").machine) == ("vm2", "vm1")
    assert nic(ctx, "web01") == b"eth0 of vm2\n"

    reassign.reassign(ctx, "vm1", "web03")

    assert runs(ctx, "vm1") == "web03"
    with ctx.store.snapshot() as tx:
        assert (tx.image("web02").state, tx.image("web02").machine) == ("ready", None)
        assert tx.image("web03").machine == "vm1"

    reassign.reassign(ctx, "vm1", "web01")  # deployed elsewhere: migrated from vm2

    assert (runs(ctx, "vm1"), runs(ctx, "vm2")) == ("web01", None)
    with ctx.store.snapshot() as tx:
        assert tx.image("web03").state == "ready"


def test_resize_stays_within_the_hardware_profile(ctx):
    vm = machine_vm(ctx, "vm1")
    deploy.deploy(ctx, "web01", "vm1")
    need = vm.hardware.memory_mib  # a new machine gets what the image needs

    with pytest.raises(Conflict, match="whose hardware profile needs"):
        reassign.resize(ctx, "vm1", need - 64, None)
    bigger = reassign.resize(ctx, "vm1", need + 256, 2)

    assert (bigger.hardware.memory_mib, bigger.hardware.cpus) == (need + 256, 2)
    found = {m.name: m for m in ctx.platform("xen").driver.discover()}["vm1"]
    assert (found.hardware.memory_mib, found.hardware.cpus) == (need + 256, 2)
    assert runs(ctx, "vm1") == "web01"
    with ctx.store.snapshot() as tx:
        assert tx.find_machine("vm1").image == "web01"
        assert any("resized to" in e.message for e in tx.events("web01"))


def test_kvm_to_xen_makes_a_valid_xen_definition(ctx, home, daemon, tmp_path):
    add_platform(home, "kvm", {"driver": "kvm", "uri": "private", "domain_type": "qemu",
                               "private_dir": str(daemon.dirs.base), "shutdown_timeout": 0})
    ctx = Context(home, host=ctx.host)
    machine_vm(ctx, "xvm1")
    with ctx.store.snapshot() as tx:
        disk = Path(tx.image("web01").volumes[0].location)
    daemon.grant(disk)
    deploy.deploy(ctx, "web01", new=True, platform="kvm")

    try:
        moved = migrate.migrate(ctx, "web01", "xvm1")
    finally:
        kvm = ctx.platform("kvm").driver
        with ctx.store.snapshot() as tx:
            source = tx.find_machine("web01")
        stopped = kvm.undeploy(source, moved_image(ctx)) if source.image else source
        kvm.destroy_machine(stopped)

    assert moved.machine == "xvm1" and runs(ctx, "xvm1") == "web01"
    xen = ctx.platform("xen").driver
    xml = xen._domain(xen.discover()[[m.name for m in xen.discover()].index("xvm1")]).XMLDesc(0)
    assert "<bootloader>pygrub</bootloader>" in xml and "bus='xen'" in xml
    validate(xml, tmp_path / "xvm1.xml")
    assert nic(ctx, "web01") == b"eth0 of xvm1\n"
    assert [p for _t, _m, p in where_it_ran(ctx, "web01")] == ["kvm", "xen"]
    ctx.close()


def moved_image(ctx: Context):
    with ctx.store.snapshot() as tx:
        return tx.image("web01")


def test_a_failed_fallback_leaves_the_clone_undeployed_and_says_both_machines_states(ctx):
    machine_vm(ctx, "vm1")
    busy = machine_vm(ctx, "vm2")
    deploy.deploy(ctx, "web01", "vm1")
    driver = ctx.platform("xen").driver
    driver.power(busy, "on")
    original = driver.deploy

    def deploy_nowhere(machine, image, attachments):
        if machine.name == "vm1":
            raise DriverError("vm1 is broken now")
        return original(machine, image, attachments)

    driver.deploy = deploy_nowhere
    with pytest.raises(DriverError) as failed:
        migrate.migrate(ctx, "web01", "vm2")

    message = str(failed.value)
    assert "it is running" in message and "vm1 is broken now" in message
    assert "machine 'vm1' is power off, machine 'vm2' is power on" in message
    with ctx.store.snapshot() as tx:
        image = tx.image("web01")
        assert (image.state, image.machine) == ("error", None)
        assert tx.find_machine("vm1").image is None and tx.find_machine("vm2").image is None


def test_migrate_with_pool_copies_the_volumes_and_removes_the_old_ones(ctx, home):
    with open(home / "encompass.toml", "a", encoding="utf-8") as config:
        config.write('\n[pools.second]\ndriver = "local"\npath = "second"\n')
    ctx = Context(home, host=ctx.host)
    machine_vm(ctx, "vm1")
    machine_vm(ctx, "vm2")
    deploy.deploy(ctx, "web01", "vm1")
    old = Path(moved_image(ctx).volumes[0].location)

    moved = migrate.migrate(ctx, "web01", "vm2", pool="second")

    [volume] = moved.volumes
    assert volume.pool == "second" and volume.backing is None and volume.depth == 0
    assert Path(volume.location).is_relative_to(home / "second") and not old.exists()
    assert runs(ctx, "vm2") == "web01"
    assert nic(ctx, "web01") == b"eth0 of vm2\n"
    assert moved.master == "base" and moved.applied.keys() == {"nic"}  # lineage, customization kept
    ctx.close()
