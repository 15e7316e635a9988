"""Claims against a real libvirt: a clone whose machine may still run it is never changed or
deleted, and is brought back once libvirt answers again; stale claims are dropped."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import tempfile
from pathlib import Path

import attrs
import libvirt
import pytest
from encompass_libvirt.daemon import start_private_daemon
from encompass_libvirt.domxml import kvm_domain_xml
from libvirt_testing import add_platform, import_demo

from encompass_core.context import Context


def image(run_cli, name: str) -> dict:
    return json.loads(run_cli("image", "show", name, "--json").out)


def qemu_running(daemon, name: str, sig: int = 0) -> bool:
    """Whether the guest's QEMU process runs (asked of the system, not of libvirt); ``sig``
    other than 0 is sent to it."""
    pidfile = daemon.dirs.runtime / "libvirt" / "qemu" / "run" / f"{name}.pid"
    try:
        os.kill(int(pidfile.read_text().strip()), sig)
    except (OSError, ValueError):
        return False
    return True


class LostLibvirt:
    """A clone deployed on a VM of a daemon of its own, then the daemon stopped."""

    def __init__(self, base_dir: Path) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="lv-", dir=base_dir))  # short: a socket path
        self.daemon = start_private_daemon(self.dir)

    def stop(self) -> None:
        os.kill(self.daemon.pid, signal.SIGTERM)  # libvirt goes away; its guest keeps running
        self.daemon._process.wait(30)

    def start(self) -> None:
        self.daemon = start_private_daemon(self.dir)

    def close(self) -> None:
        self.daemon.stop()
        qemu_running(self.daemon, "web01", signal.SIGKILL)  # one a stopped daemon left behind


@pytest.fixture
def lost(home: Path, run_cli, demo_master, base_dir: Path):
    """web01 deployed on VM web01, then ``undeploy web01`` run while libvirt was down."""
    # A plain URI (not "private"), so nothing starts the stopped daemon again behind our back.
    peer = LostLibvirt(base_dir)
    try:
        add_platform(home, "kvm", {"driver": "kvm", "uri": peer.daemon.uri, "domain_type": "qemu",
                                   "shutdown_timeout": 0, "console_dir": str(peer.daemon.dirs.guests)})
        import_demo(run_cli, demo_master)
        assert run_cli("clone", "demo", "web01").code == 0
        disk = Path(image(run_cli, "web01")["volumes"][0]["location"])
        peer.daemon.grant(disk)  # the daemon's QEMU writes the clone's overlay
        deployed = run_cli("deploy", "web01", "--new", "--platform", "kvm")
        assert deployed.code == 0, deployed.err

        peer.stop()
        failed = run_cli("undeploy", "web01")
        assert failed.code == 7 and "cannot reach libvirt" in failed.err, failed
        assert image(run_cli, "web01")["state"] == "error"
        assert qemu_running(peer.daemon, "web01")
        yield peer
    finally:
        peer.close()


@pytest.mark.slow
def test_a_clone_left_running_is_kept_and_repair_brings_it_back(lost, run_cli):
    disk = Path(image(run_cli, "web01")["volumes"][0]["location"])
    assert run_cli("master", "items", "add", "demo", "hostname", "--type", "file",
                   "--path", "/etc/hostname").code == 0
    for command in (("customize", "web01", "--set", "hostname=changed"),
                    ("image", "delete", "web01")):
        refused = run_cli(*command)
        assert refused.code != 0 and "machine 'web01' runs it" in refused.err, refused
    assert disk.exists() and "hostname" not in image(run_cli, "web01")["applied"]

    waiting = run_cli("repair", "--json")
    assert waiting.code == 0, waiting.err
    [claim] = json.loads(waiting.out)["claims"]
    assert "cannot reach libvirt" in claim["finding"] and "left alone" in claim["action"]

    lost.start()  # libvirt is back
    repaired = run_cli("repair", "--json")
    assert repaired.code == 0, repaired.err
    [claim] = json.loads(repaired.out)["claims"]
    assert claim["action"].startswith("-> deployed"), claim
    assert image(run_cli, "web01")["state"] == "deployed"

    undeployed = run_cli("undeploy", "web01", "--remove-machine")
    assert undeployed.code == 0, undeployed.err
    assert not qemu_running(lost.daemon, "web01")
    assert run_cli("machine", "show", "web01").code != 0
    assert image(run_cli, "web01")["state"] == "ready"
    assert run_cli("image", "delete", "web01").code == 0


@pytest.mark.slow
def test_undeploy_from_error_ends_the_claim_once_libvirt_is_back_even_with_the_vm_off(lost, run_cli):
    lost.start()
    with libvirt.open(lost.daemon.uri) as connection:
        with contextlib.suppress(libvirt.libvirtError):  # libvirt may still be reconnecting
            connection.lookupByName("web01").destroy()  # the VM went off meanwhile
    qemu_running(lost.daemon, "web01", signal.SIGKILL)  # whether libvirt saw it or not

    undeployed = run_cli("undeploy", "web01")

    assert undeployed.code == 0, undeployed.err
    assert image(run_cli, "web01")["state"] == "ready"
    assert json.loads(run_cli("machine", "show", "web01", "--json").out)["image"] is None
    assert json.loads(run_cli("repair", "--json").out) == {"images": [], "removals": [], "claims": [],
                                                           "leftovers": []}
    assert run_cli("image", "delete", "web01").code == 0


def test_discover_drops_a_claim_on_a_deleted_image(home: Path, run_cli, daemon):
    add_platform(home, "kvm", {"driver": "kvm", "uri": "private",
                               "private_dir": str(daemon.dirs.base), "domain_type": "qemu"})
    xml = kvm_domain_xml("claimer1", 64, 1, [], None, None, "", daemon.dirs.guests / "claimer1.log",
                         domain_type="qemu")
    with libvirt.open(daemon.uri) as connection:
        domain = connection.defineXML(xml)
        try:
            assert run_cli("discover", "--platform", "kvm", "--apply").code == 0
            context = Context(home)
            with context.store.transaction() as tx:
                machine = tx.find_machine("claimer1")
                tx.put_machine(attrs.evolve(machine, image="gone01"))

            result = run_cli("discover", "--platform", "kvm", "--apply")

            assert result.code == 0, result.err
            assert "claim on deleted image 'gone01' released" in result.out
            shown = json.loads(run_cli("machine", "show", "claimer1", "--json").out)
            assert shown["image"] is None
        finally:
            domain.undefine()
