"""A service enabled by a ``service`` item runs when the clone boots.

The demo master is given the layout of a busybox distribution (Buildroot's ``/etc/init.d/rcS``,
which starts the ``S??*`` scripts of ``/etc/init.d``, and a ``hello`` service script not
started by default). A ``service`` item on its root partition enables ``hello`` in a
copy-on-write clone; the firmware boots the clone and its console shows the service ran; an
un-customize takes the link away again.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess

import pytest

from conftest import volume_path
from encompass_core.customization.access import VolumeRef
from encompass_core.customization.openers import open_volume
from encompass_core.testing.demo import cached_demo_master, firmware_boot

# Buildroot's package/initscripts/init.d/rcS.
RCS = """\
#!/bin/sh
# Start all init scripts in /etc/init.d
# executing them in numerical order.
#
for i in /etc/init.d/S??* ;do
     # Ignore dangling symlinks (if any).
     [ ! -f "$i" ] && continue
     case "$i" in
        *.sh)
            # Source shell script for speed.
            (
                trap - INT QUIT TSTP
                set start
                . $i
            )
            ;;
        *)
            # No sh extension, so fork subprocess.
            $i start
            ;;
    esac
done
"""
HELLO = """\
#!/bin/sh
case "$1" in
  start) echo "hello-service: started on $(hostname)" ;;
  stop) ;;
esac
"""


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="qemu-system-x86 is not installed")
def test_a_service_enabled_by_an_item_runs_at_boot(run_cli, tmp_path):
    master = cached_demo_master()
    disk = tmp_path / "busybox-distro.raw"
    subprocess.run(["cp", "--sparse=always", str(master.disk), str(disk)], check=True)
    partition = master.root_partition
    with contextlib.closing(open_volume(VolumeRef(str(disk), "raw", partition), writable=True)) as files:
        files.write("/etc/init.d/rcS", RCS.encode(), mode=0o755, uid=0, gid=0)
        files.write("/etc/init.d/hello", HELLO.encode(), mode=0o755, uid=0, gid=0)
    assert run_cli("master", "import", "distro", disk).code == 0
    added = run_cli("master", "items", "add", "distro", "services", "--type", "service", "--path", "/",
                    "--partition", str(partition))
    assert added.code == 0, added.err
    assert run_cli("clone", "distro", "web01").code == 0
    done = run_cli("customize", "web01", "--set", "services=hello:on")
    assert done.code == 0, done.err

    clone = volume_path(run_cli, "web01")
    fmt = "qcow2" if clone.suffix == ".qcow2" else "raw"
    console = tmp_path / "console.log"
    text = firmware_boot(["-drive", f"file={clone},format={fmt},if=virtio"], console,
                         "encompass-demo: powering off")
    assert "hello-service: started on master" in text, text[-2000:]

    assert run_cli("uncustomize", "web01").code == 0
    listing = run_cli("image", "ls", "web01", "/etc/init.d", "--partition", str(partition), "--json")
    assert listing.code == 0, listing.err
    assert sorted(entry["name"] for entry in listing.json()) == ["hello", "rcS"]
