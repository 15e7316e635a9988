"""The proof: the demo master kept on the NFS export, cloned there, customized through the
export, boots by firmware from its disk file read over NFSv3 by QEMU's NFS driver, and its
console shows its hostname. QEMU runs in the server's network namespace (the test's thread is
there), as it asks the portmapper on port 111.

The full clone is made and customized with the ``encompass`` command, as a user would, and
booted from the ``nfs://`` URL its attachment gives (what a hypervisor's network disk takes).
The copy-on-write clone boots through its backing chain spelled out for QEMU, which cannot
follow a relative backing name over ``nfs://`` itself.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from encompass_nfs import expose
from nfs_testing import make_driver

from encompass_core.contracts import AttachRequest, CloneProgress
from encompass_core.customization.access import VolumeRef
from encompass_core.customization.openers import open_volume
from encompass_core.model import Machine
from encompass_core.records import CloneRequest
from encompass_core.testing.demo import firmware_boot

ENCOMPASS = Path(sys.executable).with_name("encompass")
QEMU = shutil.which("qemu-system-x86_64")
BOOT_TIMEOUT = 180.0

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(QEMU is None, reason="qemu-system-x86 is not installed")]


def boot(drive: list[str], console: Path, until: str) -> str:
    """Boot a disk by the firmware until the console shows ``until``."""
    return firmware_boot(drive, console, until, BOOT_TIMEOUT)


def cli(home: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENCOMPASS_")}
    env["ENCOMPASS_HOME"] = str(home)
    done = subprocess.run([str(ENCOMPASS), *args], env=env, capture_output=True, text=True, timeout=600,
                          check=False)
    assert done.returncode == 0, f"encompass {' '.join(args)}: {done.stderr}"
    return done.stdout


def test_a_clone_on_the_export_customized_boots_over_nfs(server, demo_master, tmp_path):
    master = demo_master
    home = tmp_path / "home"
    cli(home, "init")
    with open(home / "encompass.toml", "a") as config:
        config.write(f'\n[pools.nas]\ndriver = "nfs"\nurl = "{server.url}"\n')
    cli(home, "master", "import", "demo", str(master.disk), "--pool", "nas")
    cli(home, "master", "items", "add", "demo", "hostname", "--type", "file", "--path", "/etc/hostname",
        "--partition", str(master.root_partition), "--default", "master")
    cli(home, "clone", "demo", "nfs-web01", "--pool", "nas", "--mode", "full")
    cli(home, "customize", "nfs-web01", "--set", "hostname={clone}")
    assert server.contents() == ["demo", "demo/vol0.raw", "nfs-web01", "nfs-web01/vol0.raw"]

    shown = json.loads(cli(home, "image", "show", "nfs-web01", "--json"))
    volume = shown["volumes"][0]
    assert volume["location"] == f"{server.url}/nfs-web01/vol0.raw"
    driver = make_driver(tmp_path, url=server.url)
    found = {item.image: item.volume for item in driver.discover()}
    attached = driver.attach(found["nfs-web01"], Machine(name="vm", platform="kvm"),
                             AttachRequest(kinds=("nfs",), boot=True, lun=0))
    text = boot(["-drive", f"file={attached.details['url']},format=raw,if=virtio"],
                tmp_path / "console.log", "encompass-demo: powering off")
    assert "encompass-demo: hostname nfs-web01" in text
    # The master on the export was not written.
    subprocess.run(["qemu-img", "compare", "-q", str(master.disk), str(server.export_dir / "demo/vol0.raw")],
                   check=True)


def test_a_copy_on_write_clone_on_the_export_boots_through_its_chain(server, demo_master, tmp_path):
    master = demo_master
    driver = make_driver(tmp_path, url=server.url)
    imported = driver.import_volume("demo", 0, master.disk)
    overlay = driver.clone_volume(imported, driver, CloneRequest("nfs-cow1", 0, "cow", 8, "demo"),
                                  CloneProgress())
    with driver.expose(overlay, writable=True) as ref, \
            open_volume(VolumeRef(ref.path, ref.format, master.root_partition), writable=True) as files:
        files.write("/etc/hostname", b"nfs-cow1\n")
    nodes = expose.blockdevs(driver.files, "nfs-cow1/vol0.qcow2", "qcow2", writable=True)
    drive = [arg for node in nodes for arg in ("-blockdev", json.dumps(node))]
    text = boot([*drive, "-device", "virtio-blk-pci,drive=disk"], tmp_path / "console.log",
                "encompass-demo: powering off")
    assert "encompass-demo: hostname nfs-cow1" in text
    assert server.contents() == ["demo", "demo/vol0.raw", "nfs-cow1", "nfs-cow1/vol0.qcow2"]
