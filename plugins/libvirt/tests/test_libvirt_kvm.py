"""The kvm platform against a real libvirt daemon and QEMU (software emulation).

The scenario of DESIGN.md: import the demo master, clone it, customize the clone's hostname,
deploy it on a new virtual machine, see the guest say its new name on the console, undeploy.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import re
from pathlib import Path

import libvirt
import pytest
from encompass_libvirt.domxml import kvm_domain_xml
from libvirt_testing import add_platform, import_demo, wait_for_line


@pytest.fixture
def kvm(home: Path, daemon) -> Path:
    """A home whose kvm platform attaches to the session's daemon (and grants it the files)."""
    add_platform(home, "kvm", {"driver": "kvm", "uri": "private",
                               "private_dir": str(daemon.dirs.base), "domain_type": "qemu",
                               "shutdown_timeout": 0})
    return home


def set_hostname(run_cli, clone: str, hostname: str) -> None:
    """Customize the clone's /etc/hostname with `encompass customize`."""
    assert run_cli("master", "items", "add", "demo", "hostname", "--type", "file",
                   "--path", "/etc/hostname", "--partition", "2").code == 0
    result = run_cli("customize", clone, "--set", f"hostname={hostname}")
    assert result.code == 0, result.err


def machine(run_cli, name: str) -> dict:
    return json.loads(run_cli("machine", "show", name, "--json").out)


def image_state(run_cli, name: str) -> str:
    return json.loads(run_cli("image", "show", name, "--json").out)["state"]


@pytest.mark.slow
def test_deploy_boots_the_customized_clone_and_undeploy_removes_it(kvm, run_cli, demo_master, daemon):
    import_demo(run_cli, demo_master)
    assert run_cli("clone", "demo", "web01", "web02").code == 0
    set_hostname(run_cli, "web01", "web01")

    result = run_cli("deploy", "web01", "--new", "--platform", "kvm")
    assert result.code == 0, result.err
    console = Path(re.search(r"console log: (\S+)", result.out + result.err).group(1))
    assert console == daemon.dirs.guests / "web01" / "console.log"
    wait_for_line(console, "encompass-demo: hostname web01")
    assert image_state(run_cli, "web01") == "deployed"
    deployed = machine(run_cli, "web01")
    assert deployed["image"] == "web01" and deployed["extra"]["driver"] == "kvm"
    assert deployed["disks"][0].endswith("web01/vol0.qcow2")

    # A second image on a machine that runs one is refused, and left as it was.
    refused = run_cli("deploy", "web02", "web01")
    assert refused.code == 4, refused
    assert "runs 'web01' already" in refused.err
    assert image_state(run_cli, "web02") == "ready"

    result = run_cli("undeploy", "web01", "--remove-machine")
    assert result.code == 0, result.err
    assert image_state(run_cli, "web01") == "ready"
    with libvirt.open(daemon.uri) as connection:
        assert "web01" not in [d.name() for d in connection.listAllDomains(0)]


def test_discover_lists_a_domain_defined_outside_and_powers_it(kvm, run_cli, daemon):
    xml = kvm_domain_xml("outside1", 64, 1, [], None, None, "", daemon.dirs.guests / "outside1.log",
                         domain_type="qemu",
                         interfaces=['<interface type="user"><mac address="52:54:00:00:00:01"/>'
                                     '<model type="virtio"/></interface>'])
    with libvirt.open(daemon.uri) as connection:
        domain = connection.defineXML(xml)
        try:
            result = run_cli("discover", "--platform", "kvm", "--apply")
            assert result.code == 0, result.err
            found = machine(run_cli, "outside1")
            assert found["uuid"] == domain.UUIDString()
            assert found["power"] == "off"
            assert found["macs"] == ["52:54:00:00:00:01"]
            assert found["hardware"]["memory_mib"] == 64 and found["hardware"]["cpus"] == 1
            assert found["extra"]["host"]["cpus"] >= 1

            assert run_cli("machine", "power", "outside1", "on").code == 0
            assert domain.isActive() and machine(run_cli, "outside1")["power"] == "on"
            assert run_cli("machine", "power", "outside1", "off").code == 0
            assert not domain.isActive() and machine(run_cli, "outside1")["power"] == "off"
        finally:
            if domain.isActive():
                with contextlib.suppress(libvirt.libvirtError):  # it may stop on its own meanwhile
                    domain.destroy()
            domain.undefine()


def test_an_unreachable_libvirt_is_one_clear_line_and_the_image_stays_ready(home, run_cli,
                                                                            demo_master):
    add_platform(home, "kvm", {"driver": "kvm",
                               "uri": "qemu+unix:///session?socket=/nonexistent/libvirt-sock"})
    import_demo(run_cli, demo_master)
    assert run_cli("clone", "demo", "web01").code == 0
    result = run_cli("deploy", "web01", "--new")
    assert result.code == 7
    assert len(result.err.strip().splitlines()) == 1
    assert "cannot reach libvirt at qemu+unix:///session?socket=/nonexistent/libvirt-sock" in result.err
    assert "Traceback" not in result.err
    assert image_state(run_cli, "web01") == "ready"


def test_a_domain_name_clash_is_refused(kvm, run_cli, demo_master, daemon):
    import_demo(run_cli, demo_master)
    assert run_cli("clone", "demo", "web03").code == 0
    xml = kvm_domain_xml("web03", 64, 1, [], None, None, "", daemon.dirs.guests / "web03.log",
                         domain_type="qemu")
    with libvirt.open(daemon.uri) as connection:
        domain = connection.defineXML(xml)
        try:
            result = run_cli("deploy", "web03", "--new", "--platform", "kvm")
            assert result.code == 4, result
            assert "has a domain named 'web03' already" in result.err
            assert image_state(run_cli, "web03") == "ready"
            assert domain.XMLDesc(0) == connection.lookupByName("web03").XMLDesc(0)
        finally:
            domain.undefine()


@pytest.mark.slow
def test_a_disk_the_hypervisor_cannot_read_is_a_clear_error(home, run_cli, demo_master, daemon):
    # The plain URI: nothing grants the daemon's user (nobody, under root) the clone's files.
    if daemon.user == pwd.getpwuid(os.geteuid()).pw_name:
        pytest.skip("the daemon runs as the pool's owner, who may read everything")
    add_platform(home, "kvm", {"driver": "kvm", "uri": daemon.uri, "domain_type": "qemu"})
    import_demo(run_cli, demo_master)
    assert run_cli("clone", "demo", "web04").code == 0
    result = run_cli("deploy", "web04", "--new")
    assert result.code == 7, result
    assert "cannot boot 'web04' on machine 'web04'" in result.err
    assert "the hypervisor cannot read a disk" in result.err
    assert image_state(run_cli, "web04") == "ready"
    with libvirt.open(daemon.uri) as connection:
        assert "web04" not in [d.name() for d in connection.listAllDomains(0)]
