"""Loading the nfs pool imports what a copy needs, not the core's volume openers.

Every ``encompass clone --pool nas`` loads the pool's driver; the openers (qemu-storage-daemon
over FUSE, libguestfs, ntfs-3g, mtools...) are needed only when a volume of the export is
opened for customizing, and importing them cost a clone about 30 ms.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_the_driver_loads_without_the_openers():
    probe = ("import sys, encompass_nfs.driver\n"
             "print('\\n'.join(m for m in sys.modules if 'openers' in m))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == []


def test_an_exposed_file_still_reaches_the_qcow2_opener():
    from encompass_nfs import expose

    assert expose.qcow2_opener.FuseExport.__name__ == "FuseExport"


ENCOMPASS = Path(sys.executable).with_name("encompass")


def home_with_an_nfs_pool(tmp_path: Path, timeout: int) -> dict[str, str]:
    """The environment of a new home whose configuration names an nfs pool (never reached)."""
    home = tmp_path / "home"
    env = {**os.environ, "ENCOMPASS_HOME": str(home), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    subprocess.run([ENCOMPASS, "init"], env=env, check=True, capture_output=True, timeout=60)
    with open(home / "encompass.toml", "a", encoding="utf-8") as config:
        config.write(f'\n[pools.nas]\ndriver = "nfs"\nurl = "nfs://127.0.0.1/export"\ntimeout = {timeout}\n')
    return env


def test_a_command_that_uses_another_pool_does_not_import_the_driver(tmp_path):
    # Every command that builds a pool checks the settings of every pool first, an nfs pool's
    # too: that takes the plugin's settings, not its driver, libnfs and the copy helpers
    # (about 17 ms of each such command).
    env = home_with_an_nfs_pool(tmp_path, timeout=5)
    probe = ("import sys\n"
             "from encompass_core.context import Context\n"
             "context = Context()\n"
             "print(type(context.pool('local').driver).__name__)\n"
             "print('\\n'.join(m for m in sys.modules if m.startswith(('encompass_nfs', 'libnfs'))))")
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    built, *modules = done.stdout.split()
    assert built == "LocalStorageDriver"
    assert sorted(modules) == ["encompass_nfs", "encompass_nfs.plugin", "encompass_nfs.settings"]


def test_a_wrong_setting_of_an_nfs_pool_is_still_told_before_any_work(tmp_path):
    env = home_with_an_nfs_pool(tmp_path, timeout=0)
    disk = tmp_path / "small.raw"
    disk.write_bytes(bytes(1 << 20))
    done = subprocess.run([ENCOMPASS, "master", "import", "base", disk], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 5, done.stderr
    assert "[pools.nas]" in done.stderr and "timeout" in done.stderr
    assert len(done.stderr.splitlines()) == 1
    listed = subprocess.run([ENCOMPASS, "image", "list", "--json"], env=env, capture_output=True,
                            text=True, timeout=60)
    assert listed.stdout.strip() == "[]"
