"""The proof: a clone of the demo master, customized by Encompass, deployed on blade 3 of the lab
chassis, boots from its LUN 0 on the SAN and its console shows its customized hostname.

The SAN is the local pool exported over iSCSI by tgt (``export = "iscsi"``): the deploy maps the
clone's volume at LUN 0 to the blade's initiator (the host port discovery reported), the driver
sets the blade's boot sequence through the MM and powers it on; the blade (a QEMU guest behind
snmpd) finds its LUN as its own initiator and its firmware boots it.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from bladecenter_testing import COMMUNITY_ENV, encompass, toml_table
from encompass_bladecenter.lab_peer import LabChassis, running_chassis

from encompass_core.drivers.tgt import parse_show
from encompass_core.testing.demo import cached_demo_master
from encompass_core.testing.tgt import Tgtd, running_tgtd

pytestmark = pytest.mark.slow
ISCSI_DRIVER = Path("/usr/lib/x86_64-linux-gnu/qemu/block-iscsi.so")


@pytest.fixture
def san(tmp_path: Path) -> Iterator[Tgtd]:
    if shutil.which("tgtd") is None or not ISCSI_DRIVER.exists():
        pytest.skip("tgt and QEMU's iSCSI driver are not installed (apt-get install tgt qemu-block-extra)")
    with running_tgtd(tmp_path) as daemon:
        yield daemon


@pytest.fixture
def san_chassis(san: Tgtd) -> Iterator[LabChassis]:
    base = Path(tempfile.mkdtemp(prefix="enc-bc-san-", dir="/var/tmp"))
    base.chmod(0o755)
    try:
        with running_chassis(base, san_portal=san.portal, slots=(1, 3)) as running:
            yield running
    finally:
        shutil.rmtree(base, ignore_errors=True)


def ok(home: Path, *args: str, **env: str) -> str:
    done = encompass(home, *args, **env)
    assert done.returncode == 0, f"encompass {' '.join(args)}: {done.stderr}"
    return done.stdout + done.stderr


def test_a_customized_clone_deployed_on_blade_3_boots_from_its_lun(tmp_path, san, san_chassis):
    home = tmp_path / "home"
    ok(home, "init")
    with open(home / "encompass.toml", "a", encoding="utf-8") as config:
        config.write(f'\n[pools.san]\ndriver = "local"\npath = "san"\nexport = "iscsi"\n'
                     f'tgt_control = {san.control}\niscsi_portal = "{san.portal}"\n')
        config.write(toml_table("chassis1", san_chassis.platform_table(COMMUNITY_ENV)))
    env = {COMMUNITY_ENV: san_chassis.community}
    master = cached_demo_master()
    ok(home, "master", "import", "demo", str(master.disk), "--hw", "memory=256M")
    ok(home, "master", "items", "add", "demo", "hostname", "--type", "file", "--path", "/etc/hostname",
       "--partition", str(master.root_partition), "--default", "master")
    ok(home, "clone", "demo", "web01", "--pool", "san", "--mode", "full")
    ok(home, "customize", "web01", "--set", "hostname=web01-on-blade3")
    ok(home, "discover", "--apply", **env)

    said = ok(home, "deploy", "web01", "chassis1-blade3", **env)

    console = Path(re.search(r"console log: (\S+)", said).group(1))
    assert console == san_chassis.blade(3).console
    shown = san_chassis.blade(3).wait_for_console("encompass-demo: hostname web01-on-blade3", timeout=240)
    assert "SYSLINUX" in shown  # the blade's firmware booted the LUN: no kernel was handed over
    initiator = san_chassis.blade(3).identity.initiator
    targets = parse_show(san.tgtadm("--op", "show", "--mode", "target"))
    assert [(t.initiators, sorted(t.luns)) for t in targets.values()] == [((initiator,), [1])]
    assert "san iscsi://" in san_chassis.blade(3).log.read_text()
    assert san_chassis.blade(1).power_state() == "off"  # the other blade was left alone

    ok(home, "undeploy", "web01", **env)
    assert san_chassis.blade(3).power_state() == "off"
    assert parse_show(san.tgtadm("--op", "show", "--mode", "target")) == {}  # unmapped
