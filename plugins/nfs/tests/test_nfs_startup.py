"""Loading the nfs pool imports what a copy needs, not the core's volume openers.

Every ``encompass clone --pool nas`` loads the pool's driver; the openers (qemu-storage-daemon
over FUSE, libguestfs, ntfs-3g, mtools...) are needed only when a volume of the export is
opened for customizing, and importing them cost a clone about 30 ms.
"""

from __future__ import annotations

import subprocess
import sys


def test_the_driver_loads_without_the_openers():
    probe = ("import sys, encompass_nfs.driver\n"
             "print('\\n'.join(m for m in sys.modules if 'openers' in m))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == []


def test_an_exposed_file_still_reaches_the_qcow2_opener():
    from encompass_nfs import expose

    assert expose.qcow2_opener.FuseExport.__name__ == "FuseExport"
