"""Claims against a real libvirt: a clone whose machine may still run it is never changed or
deleted, and is brought back once libvirt answers again; stale claims are dropped."""

from __future__ import annotations

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


@pytest.mark.slow
def test_a_clone_left_running_by_an_unreachable_libvirt_is_kept_until_recovered(
        home: Path, run_cli, demo_master, base_dir: Path):
    # A daemon of its own, as this test stops it; a plain URI, so nothing starts it again.
    own_dir = Path(tempfile.mkdtemp(prefix="lv-", dir=base_dir))  # short: a socket path
    own = start_private_daemon(own_dir)
    try:
        add_platform(home, "kvm", {"driver": "kvm", "uri": own.uri, "domain_type": "qemu",
                                   "shutdown_timeout": 0, "console_dir": str(own.dirs.guests)})
        import_demo(run_cli, demo_master)
        assert run_cli("clone", "demo", "web01").code == 0
        disk = Path(image(run_cli, "web01")["volumes"][0]["location"])
        own.grant(disk)  # the daemon's QEMU writes the clone's overlay
        deployed = run_cli("deploy", "web01", "--new", "--platform", "kvm")
        assert deployed.code == 0, deployed.err

        os.kill(own.pid, signal.SIGTERM)  # libvirt goes away; its guest keeps running
        own._process.wait(30)
        failed = run_cli("undeploy", "web01")
        assert failed.code == 7 and "cannot reach libvirt" in failed.err, failed
        assert image(run_cli, "web01")["state"] == "error"
        assert qemu_running(own, "web01")

        assert run_cli("master", "items", "add", "demo", "hostname", "--type", "file",
                       "--path", "/etc/hostname").code == 0
        for command in (("customize", "web01", "--set", "hostname=changed"),
                        ("image", "delete", "web01")):
            refused = run_cli(*command)
            assert refused.code != 0 and "machine 'web01' runs it" in refused.err, refused
        assert disk.exists() and "hostname" not in image(run_cli, "web01")["applied"]

        waiting = run_cli("repair", "--json")
        assert waiting.code == 0, waiting.err
        [claim] = json.loads(waiting.out)
        assert "cannot reach libvirt" in claim["finding"] and "left alone" in claim["action"]

        own = start_private_daemon(own_dir)  # libvirt is back
        repaired = run_cli("repair", "--json")
        assert repaired.code == 0, repaired.err
        [claim] = json.loads(repaired.out)
        assert claim["action"].startswith("-> deployed"), claim
        assert image(run_cli, "web01")["state"] == "deployed"

        undeployed = run_cli("undeploy", "web01", "--remove-machine")
        assert undeployed.code == 0, undeployed.err
        assert not qemu_running(own, "web01")
        assert run_cli("machine", "show", "web01").code != 0
        assert image(run_cli, "web01")["state"] == "ready"
        assert run_cli("image", "delete", "web01").code == 0
    finally:
        own.stop()
        qemu_running(own, "web01", signal.SIGKILL)  # a guest the stopped daemon left behind


def test_discover_drops_a_claim_on_a_deleted_image(home: Path, run_cli, daemon):
    add_platform(home, "kvm", {"driver": "kvm", "uri": "private",
                               "private_dir": str(daemon.dirs.base), "domain_type": "qemu"})
    xml = kvm_domain_xml("claimer1", 64, 1, [], None, None, "", daemon.dirs.guests / "claimer1.log",
                         domain_type="qemu")
    with libvirt.open(daemon.uri) as connection:
        domain = connection.defineXML(xml)
        try:
            assert run_cli("discover", "--platform", "kvm").code == 0
            context = Context(home)
            with context.store.transaction() as tx:
                machine = tx.find_machine("claimer1")
                tx.put_machine(attrs.evolve(machine, image="gone01"))

            result = run_cli("discover", "--platform", "kvm")

            assert result.code == 0, result.err
            assert "machine 'claimer1' claimed an image that no longer exists" in result.err
            shown = json.loads(run_cli("machine", "show", "claimer1", "--json").out)
            assert shown["image"] is None
        finally:
            domain.undefine()
