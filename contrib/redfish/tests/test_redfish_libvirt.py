"""A Redfish server that really boots: sushy-emulator serves the domains of a private libvirt
daemon as ComputerSystems, so each server behind the "BMC" is a QEMU guest (as VirtualBMC and
sushy-tools do in labs).

The server's adapter boots from SAN: its disk is LUN 0 of the target the local pool exports
over iSCSI (tgt) to its initiator, as a SAN would map it. A clone of the demo master is
deployed on it through the CLI, as a user would: the pool serves the clone's volume on that
target, the redfish driver sets the one-time boot source and powers the server on through
Redfish, and the guest prints its customized hostname on its console.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

libvirt = pytest.importorskip("libvirt", reason="libvirt-python is not installed")

from encompass_libvirt.daemon import start_private_daemon  # noqa: E402
from encompass_libvirt.domxml import Disk, kvm_domain_xml  # noqa: E402
from redfish_testing import PASSWORD, running_emulator  # noqa: E402

from encompass_core.drivers.tgt import parse_show  # noqa: E402
from encompass_core.testing.demo import cached_demo_master  # noqa: E402
from encompass_core.testing.tgt import running_tgtd  # noqa: E402

ENCOMPASS = Path(sys.executable).with_name("encompass")
SERVER = "rack1-srv1"
TARGET = f"iqn.2026-12.org.encompass:lab.{SERVER}"  # the local pool's target for this machine
INITIATOR = f"iqn.2026-12.org.encompass:initiator.{SERVER}"  # its adapter's initiator name
BOOT_TIMEOUT = 180.0


@pytest.fixture(scope="module")
def base_dir():
    """A directory libvirt's user (nobody) can traverse; a short name for QEMU's sockets."""
    base = Path(tempfile.mkdtemp(prefix="enc-rf-", dir="/var/tmp"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def daemon(base_dir):
    with start_private_daemon(base_dir / "libvirt") as running:
        yield running


@pytest.fixture(scope="module")
def tgtd(base_dir):
    with running_tgtd(base_dir) as running:
        yield running


@pytest.fixture(scope="module")
def server(daemon, tgtd):
    """The physical server: a domain whose adapter boots LUN 0 of its target (1 GiB of memory:
    the emulator reads less than 1 GiB as 0)."""
    console = daemon.dirs.guests / f"{SERVER}.log"
    boot_lun = Disk(path=f"{TARGET}/1", kind="iscsi", host="127.0.0.1", port=tgtd.port,
                    initiator=INITIATOR)
    xml = kvm_domain_xml(SERVER, 1024, 1, [boot_lun], None, None, "", console, domain_type="qemu")
    with libvirt.open(daemon.uri) as connection:
        domain = connection.defineXML(xml)
    yield console
    with libvirt.open(daemon.uri) as connection:
        domain = connection.lookupByName(SERVER)
        if domain.isActive():
            with contextlib.suppress(libvirt.libvirtError):  # it may stop on its own meanwhile
                domain.destroy()
        domain.undefine()


@pytest.fixture(scope="module")
def bmc(tmp_path_factory, daemon, server):
    """sushy-emulator in front of the daemon's domains."""
    with running_emulator(tmp_path_factory.mktemp("sushy-libvirt"),
                          {"SUSHY_EMULATOR_LIBVIRT_URI": daemon.uri}, []) as emulator:
        yield emulator


@pytest.fixture
def home(base_dir, bmc, tgtd):
    """ENCOMPASS_HOME with a pool exported over iSCSI and the Redfish platform (its password in
    a 0600 file)."""
    home = Path(tempfile.mkdtemp(prefix="home-", dir=base_dir))
    password = home / "bmc.password"
    password.write_text(PASSWORD + "\n")
    password.chmod(0o600)
    assert cli(home, "init").returncode == 0
    with open(home / "encompass.toml", "a", encoding="utf-8") as config:
        config.write(f'\n[pools.lab]\ndriver = "local"\npath = "lab"\nexport = "iscsi"\n'
                     f'tgt_control = {tgtd.control}\niscsi_portal = "{tgtd.portal}"\n'
                     f'\n[platforms.rack1]\ndriver = "redfish"\naddress = "{bmc.url}"\n'
                     f'username = "{bmc.username}"\npassword_file = "{password}"\n'
                     f'systems = ["{SERVER}"]\npower_timeout = 60\n')
    return home


def cli(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENCOMPASS_")}
    env.update(ENCOMPASS_HOME=str(home), XDG_CACHE_HOME=str(home / "xdg-cache"), COLUMNS="200")
    return subprocess.run([str(ENCOMPASS), *args], env=env, capture_output=True, text=True,
                          timeout=600)


def wait_for_line(log: Path, text: str) -> None:
    deadline = time.monotonic() + BOOT_TIMEOUT
    content = ""
    while time.monotonic() < deadline:
        content = log.read_text(errors="replace") if log.exists() else ""
        if text in content:
            return
        time.sleep(0.25)  # the console file is the only signal a guest gives
    raise AssertionError(f"no {text!r} on the console within {BOOT_TIMEOUT:.0f} s:\n{content[-3000:]}")


def test_discovery_reads_the_domain_through_redfish(home, daemon):
    assert cli(home, "discover", "--platform", "rack1", "--apply").returncode == 0
    shown = json.loads(cli(home, "machine", "show", SERVER, "--json").stdout)
    with libvirt.open(daemon.uri) as connection:
        uuid = connection.lookupByName(SERVER).UUIDString()
    assert (shown["uuid"], shown["kind"], shown["power"]) == (uuid, "physical", "off")
    assert shown["hardware"]["memory_mib"] == 1024 and shown["hardware"]["cpus"] == 1


@pytest.mark.slow
def test_a_clone_deployed_through_redfish_boots_from_san_with_its_hostname(home, server, tgtd, bmc):
    master = cached_demo_master()
    steps = [("master", "import", "demo", str(master.disk), "--hw", "memory=256M"),
             ("master", "items", "add", "demo", "hostname", "--type", "file",
              "--path", "/etc/hostname", "--partition", "2"),
             ("clone", "demo", "web01", "--pool", "lab", "--mode", "full"),
             ("customize", "web01", "--set", "hostname=web01-via-redfish"),
             ("discover", "--platform", "rack1", "--apply")]
    for step in steps:
        done = cli(home, *step)
        assert done.returncode == 0, f"{step}: {done.stderr}"
    server.unlink(missing_ok=True)

    deployed = cli(home, "deploy", "web01", SERVER)

    assert deployed.returncode == 0, deployed.stderr
    wait_for_line(server, "encompass-demo: hostname web01-via-redfish")
    served = parse_show(tgtd.tgtadm("--op", "show", "--mode", "target"))[TARGET]
    assert served.initiators == (INITIATOR,)
    shown = json.loads(cli(home, "machine", "show", SERVER, "--json").stdout)
    assert shown["power"] == "on" and shown["image"] == "web01"
    # The demo guest powers itself off once it has said its name: only the boot source is left.
    assert bmc.get(shown["extra"]["redfish_id"])["Boot"]["BootSourceOverrideTarget"] == "Hdd"
    assert PASSWORD not in deployed.stdout + deployed.stderr

    undeployed = cli(home, "undeploy", "web01")
    assert undeployed.returncode == 0, undeployed.stderr
    assert bmc.get(shown["extra"]["redfish_id"])["PowerState"] == "Off"
    assert TARGET not in parse_show(tgtd.tgtadm("--op", "show", "--mode", "target"))
