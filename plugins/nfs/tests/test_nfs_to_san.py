"""Issue 10's proof across pools: a master kept on the NFS export is cloned onto a DS4xxx logical
drive, customized there, deployed on a KVM machine, and boots from its LUN over iSCSI.

Everything runs in the NFS server's network namespace (the test's thread joins it, see
``nfs_testing``): the SAN's tgt daemon, the SMcli simulator, the ``encompass`` commands, the
private libvirt daemon and its QEMU, so the export, the portal and the guest all meet on that
namespace's 127.0.0.1. The clone is streamed by the core (NFS and SAN share no native copy).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from encompass_core.testing.tgt import running_tgtd

pytest.importorskip("encompass_ds4xxx", reason="the ds4xxx pool (encompass-ds4xxx) is not installed")
libvirt = pytest.importorskip("libvirt", reason="libvirt-python is not installed")
pytest.importorskip("encompass_libvirt", reason="the kvm platform (encompass-libvirt) is not installed")
from encompass_libvirt.daemon import start_private_daemon  # noqa: E402

pytestmark = pytest.mark.slow
# The SAN side's test helpers: the SMcli simulator lives in the ds4xxx plugin's tests.
SAN_TESTS = Path(__file__).resolve().parents[2] / "ds4xxx" / "tests"
SMCLI = SAN_TESTS / "SMcli"
CONTROLLERS = ["127.0.0.2", "127.0.0.3"]
UTILITY_INITIATOR = "iqn.2024-01.org.encompass:utility"
ENCOMPASS = Path(sys.executable).with_name("encompass")
BOOT_TIMEOUT = 240.0


def cli(home: Path, state: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENCOMPASS_")}
    env.update(ENCOMPASS_HOME=str(home), SMCLI_SIM_STATE=str(state))
    return subprocess.run([str(ENCOMPASS), *args], env=env, capture_output=True, text=True,
                          timeout=900, check=False)


def ok(home: Path, state: Path, *args: str) -> str:
    done = cli(home, state, *args)
    assert done.returncode == 0, f"encompass {' '.join(args)}: {done.stderr}"
    return done.stdout + done.stderr


def test_a_master_on_the_export_cloned_onto_a_logical_drive_boots_from_its_lun(server, demo_master, tmp_path):
    master = demo_master
    base = Path(tempfile.mkdtemp(prefix="enc-n2s-", dir="/var/tmp"))  # short: socket paths
    base.chmod(0o755)
    state = tmp_path / "sim" / "state.json"
    state.parent.mkdir()
    try:
        with running_tgtd(tmp_path) as tgtd, start_private_daemon(base / "libvirt") as daemon:
            subprocess.run([str(SMCLI), "--sim-init", "name=DS4700-sim",
                            f"controllers={','.join(CONTROLLERS)}", "arrays=1:256 MB",
                            f"portal=127.0.0.1:{tgtd.port}", f"tgt_control={tgtd.control}",
                            f"data_dir={tmp_path / 'sim' / 'drives'}"],
                           check=True, env={**os.environ, "SMCLI_SIM_STATE": str(state)})
            home = tmp_path / "home"
            ok(home, state, "init")
            with open(home / "encompass.toml", "a", encoding="utf-8") as config:
                config.write(f"""
[pools.nas]
driver = "nfs"
url = "{server.url}"

[pools.san]
driver = "ds4xxx"
smcli = "{SMCLI}"
controllers = {json.dumps(CONTROLLERS)}
array = "1"
utility_initiator = "{UTILITY_INITIATOR}"
lun_offset = 1
poll_interval = 0.1

[platforms.kvm]
driver = "kvm"
uri = "private"
private_dir = "{daemon.dirs.base}"
domain_type = "qemu"
shutdown_timeout = 0
""")
            plugins = ok(home, state, "plugins")
            for name in ("nfs", "ds4xxx", "kvm"):
                assert re.search(rf"^{name}\s.*\bactive\b", plugins, re.MULTILINE), plugins

            ok(home, state, "master", "import", "demo", str(master.disk), "--pool", "nas")
            ok(home, state, "master", "items", "add", "demo", "hostname", "--type", "file",
               "--path", "/etc/hostname", "--partition", str(master.root_partition), "--default", "master")
            cloned = ok(home, state, "clone", "demo", "web01", "--pool", "san", "--mode", "full")
            assert "web01" in cloned
            ok(home, state, "customize", "web01", "--set", "hostname=web01-from-nas")
            shown = json.loads(cli(home, state, "image", "show", "web01", "--json").stdout)
            assert shown["master"] == "demo"
            assert [v["pool"] for v in shown["volumes"]] == ["san"]
            drives = json.loads(state.read_text())["drives"]
            assert "web01_0" in {d["label"] for d in drives.values()}

            deployed = cli(home, state, "deploy", "web01", "--new", "--platform", "kvm")
            assert deployed.returncode == 0, deployed.stderr
            console = Path(re.search(r"console log: (\S+)", deployed.stdout + deployed.stderr).group(1))
            deadline = time.monotonic() + BOOT_TIMEOUT
            shown_text = ""
            while time.monotonic() < deadline and "hostname web01-from-nas" not in shown_text:
                shown_text = console.read_text(errors="replace") if console.exists() else ""
                time.sleep(0.5)
            assert "encompass-demo: hostname web01-from-nas" in shown_text, shown_text[-2000:]
            assert "SYSLINUX" in shown_text  # firmware booted the LUN: no kernel handed over
            with libvirt.open(daemon.uri) as connection:
                disk = ET.fromstring(connection.lookupByName("web01").XMLDesc(0)).find("devices/disk")
            assert (disk.get("type"), disk.find("source").get("protocol")) == ("network", "iscsi")

            ok(home, state, "undeploy", "web01", "--remove-machine")
            # The master on the export was never written.
            subprocess.run(["qemu-img", "compare", "-q", str(master.disk),
                            str(server.export_dir / "demo" / "vol0.raw")], check=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
