"""A clone kept on the utility server boots a KVM guest over iSCSI: the local pool exports it
through tgt (``export = "iscsi"``), the kvm platform gives QEMU's iSCSI client the LUN as a
libvirt network disk, SeaBIOS boots it, and the console shows the customized hostname."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import libvirt
import pytest
from libvirt_testing import add_platform, import_demo, wait_for_line

from encompass_core.drivers.tgt import parse_show
from encompass_core.testing.tgt import running_tgtd

ISCSI_DRIVER = Path("/usr/lib/x86_64-linux-gnu/qemu/block-iscsi.so")


@pytest.fixture
def tgtd(tmp_path):
    with running_tgtd(tmp_path) as daemon:
        yield daemon


@pytest.fixture
def lab(home: Path, daemon, tgtd) -> Path:
    """A home with a pool exported over iSCSI by the test's tgtd and a kvm platform."""
    if not ISCSI_DRIVER.exists():
        pytest.skip("QEMU's iSCSI driver is not installed (apt-get install qemu-block-extra)")
    with open(home / "encompass.toml", "a", encoding="utf-8") as config:
        config.write(f'\n[pools.lab]\ndriver = "local"\npath = "lab"\nexport = "iscsi"\n'
                     f'tgt_control = {tgtd.control}\niscsi_portal = "{tgtd.portal}"\n')
    add_platform(home, "kvm", {"driver": "kvm", "uri": "private", "private_dir": str(daemon.dirs.base),
                               "domain_type": "qemu", "shutdown_timeout": 0})
    return home


@pytest.mark.slow
def test_a_clone_exported_over_iscsi_boots_in_a_vm(lab, run_cli, demo_master, daemon, tgtd):
    import_demo(run_cli, demo_master)  # no kernel in its profile: the firmware boots the LUN
    assert run_cli("master", "items", "add", "demo", "hostname", "--type", "file",
                   "--path", "/etc/hostname", "--partition", "2").code == 0
    cloned = run_cli("clone", "demo", "web01", "--pool", "lab", "--mode", "full")
    assert cloned.code == 0, cloned.err
    assert run_cli("customize", "web01", "--set", "hostname=web01-over-iscsi").code == 0

    result = run_cli("deploy", "web01", "--new", "--platform", "kvm")

    assert result.code == 0, result.err
    console = Path(re.search(r"console log: (\S+)", result.out + result.err).group(1))
    wait_for_line(console, "encompass-demo: hostname web01-over-iscsi")
    target = "iqn.2026-12.org.encompass:lab.web01"
    served = parse_show(tgtd.tgtadm("--op", "show", "--mode", "target"))[target]
    assert served.luns == {1: str(lab / "lab" / "web01" / "vol0.raw")}
    assert served.initiators == ("iqn.2026-12.org.encompass:initiator.web01",)
    with libvirt.open(daemon.uri) as connection:
        disk = ET.fromstring(connection.lookupByName("web01").XMLDesc(0)).find("devices/disk")
    assert disk.get("type") == "network"
    source = disk.find("source")
    assert (source.get("protocol"), source.get("name")) == ("iscsi", f"{target}/1")

    undeployed = run_cli("undeploy", "web01", "--remove-machine")
    assert undeployed.code == 0, undeployed.err
    assert target not in parse_show(tgtd.tgtadm("--op", "show", "--mode", "target"))


def test_a_copy_on_write_clone_is_refused_before_the_machine_is_made(lab, run_cli, demo_master, daemon,
                                                                     tgtd):
    import_demo(run_cli, demo_master)
    assert run_cli("clone", "demo", "web02", "--pool", "lab", "--mode", "cow").code == 0

    result = run_cli("deploy", "web02", "--new", "--platform", "kvm")

    assert result.code != 0
    assert len(result.err.strip().splitlines()) == 1, result.err
    assert "serves raw volumes over iSCSI" in result.err and "--mode full" in result.err
    assert parse_show(tgtd.tgtadm("--op", "show", "--mode", "target")) == {}
    shown = run_cli("image", "show", "web02", "--json")
    assert '"state": "ready"' in shown.out
