"""The proof: a clone of the demo master, customized by Encompass, deployed on an AMT PC of the
lab, boots from its iSCSI LUN 0 and its console shows its customized hostname.

The SAN is the local pool exported over iSCSI by tgt (``export = "iscsi"``): the deploy maps the
clone's volume at LUN 0 to the PC's boot initiator (``iqn.2010-04.org.ipxe:UUID``, the host port
discovery reported), the driver forces a one-time hard-drive boot through AMT and powers the PC
on. The PC (a QEMU guest behind the WS-Man responder) boots the network first on its own, which
finds nothing: only the one-time boot source makes it log in to the SAN and boot the LUN.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from amt_testing import PASSWORD, USER, init_home, run_cli, settings, toml_table
from encompass_amt.lab.responder import AmtLab, AmtPc, add_lab_pc

from encompass_core.drivers.tgt import parse_show
from encompass_core.testing.demo import cached_demo_master
from encompass_core.testing.lab import Lab, LabMachine
from encompass_core.testing.tgt import Tgtd, running_tgtd

pytestmark = pytest.mark.slow
ISCSI_DRIVER = Path("/usr/lib/x86_64-linux-gnu/qemu/block-iscsi.so")


@pytest.fixture
def san(tmp_path: Path) -> Iterator[Tgtd]:
    if shutil.which("tgtd", path="/usr/sbin:/usr/bin") is None or not ISCSI_DRIVER.exists():
        pytest.skip("tgt and QEMU's iSCSI driver are not installed (apt-get install tgt qemu-block-extra)")
    with running_tgtd(tmp_path) as daemon:
        yield daemon


@pytest.fixture
def lab_pcs(san: Tgtd) -> Iterator[tuple[AmtLab, list[AmtPc], Lab]]:
    """Two AMT PCs that are QEMU guests, their SAN the test's tgtd."""
    base = Path(tempfile.mkdtemp(prefix="enc-amt-", dir="/var/tmp"))
    base.chmod(0o755)
    try:
        with Lab(base / "lab") as lab:
            pcs = [add_lab_pc(lab, name, san_portal=san.portal) for name in ("pc1", "pc2")]
            with AmtLab(pcs, USER, PASSWORD) as responder:
                yield responder, pcs, lab
    finally:
        shutil.rmtree(base, ignore_errors=True)


def ok(home: Path, *args: str) -> str:
    done = run_cli(home, *args)
    assert done.code == 0, f"encompass {' '.join(args)}: {done.err}"
    assert PASSWORD not in done.out + done.err
    return done.out + done.err


def command_lines() -> str:
    """The argv of every process running now."""
    lines = []
    for entry in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            lines.append(entry.read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue
    return "\n".join(lines)


def test_a_customized_clone_deployed_on_an_amt_pc_boots_from_its_lun(tmp_path, san, lab_pcs):
    responder, pcs, lab = lab_pcs
    home = init_home(tmp_path / "home")
    with open(home / "encompass.toml", "a", encoding="utf-8") as config:
        config.write(f'\n[pools.san]\ndriver = "local"\npath = "san"\nexport = "iscsi"\n'
                     f'tgt_control = {san.control}\niscsi_portal = "{san.portal}"\n')
        # What a serial-over-LAN logger would write: the lab keeps each PC's console there.
        config.write(toml_table("pcs", settings(responder, console_log=str(lab.directory / "{name}" /
                                                                              "console.log"))))
    master = cached_demo_master()
    ok(home, "master", "import", "demo", str(master.disk), "--hw", "memory=256M")
    ok(home, "master", "items", "add", "demo", "hostname", "--type", "file", "--path", "/etc/hostname",
       "--partition", str(master.root_partition), "--default", "master")
    ok(home, "clone", "demo", "web01", "--pool", "san", "--mode", "full")
    ok(home, "customize", "web01", "--set", "hostname=web01-on-amt")
    ok(home, "discover", "--platform", "pcs", "--apply")

    said = ok(home, "deploy", "web01", "pc1")

    machine: LabMachine = pcs[0].backend.machine
    assert f"console log: {machine.console}" in said
    shown = machine.wait_for_console("encompass-demo: hostname web01-on-amt", timeout=240)
    assert "SYSLINUX" in shown  # the PC's firmware booted the LUN: no kernel was handed over
    assert PASSWORD not in command_lines()  # nor in QEMU's argv, nor anyone's
    initiator = f"iqn.2010-04.org.ipxe:{machine.identity.uuid}"
    assert machine.identity.initiator == initiator
    targets = parse_show(san.tgtadm("--op", "show", "--mode", "target"))
    assert [(t.initiators, sorted(t.luns)) for t in targets.values()] == [((initiator,), [1])]
    assert "booting san iscsi://" in machine.log.read_text()
    assert machine.settings.boot_order == ("network",)  # the hard-drive boot was for once only
    assert pcs[1].backend.machine.power_state() == "off"  # the other PC was left alone

    ok(home, "undeploy", "web01")
    assert machine.power_state() == "off"
    assert parse_show(san.tgtadm("--op", "show", "--mode", "target")) == {}  # unmapped
