"""A lab NAS to try the plugin against: nfs-ganesha with its rpcbind in a private network and
mount namespace (:mod:`.ganesha`), exporting a folder of the lab as ``nfs://127.0.0.1/export``.

``with lab_nas(workdir) as peer:`` starts the server and keeps the calling thread in the
server's network namespace for the ``with`` block: the pool's libnfs calls, and every process
the thread starts (qemu-img, a private libvirt daemon and its QEMU, which asks the portmapper on
port 111), reach the server on that namespace's 127.0.0.1. At the end the thread comes back and
the server, rpcbind and the namespace stop. Offered to the core (``encompass demo --pool nas``)
through the ``encompass_lab_peers`` hook.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from encompass_core.errors import DriverError, NotSupported
from encompass_core.records import LabPeer

from .ganesha import Ganesha, missing_tools


@contextlib.contextmanager
def lab_nas(workdir: Path, san_portal: str | None = None, count: int = 0) -> Iterator[LabPeer]:
    """The ``encompass_lab_peers`` start function (``san_portal`` and ``count`` are a platform
    peer's: unused)."""
    why = missing_tools()
    if why:
        raise NotSupported(f"the lab NAS cannot start: {why}")
    server = Ganesha(Path(workdir))
    try:
        try:
            server.start()
        except (RuntimeError, OSError) as error:
            raise DriverError(f"the lab NAS (nfs-ganesha) did not start: {error}") from None
        with server.entered():
            yield LabPeer(name="nas", pool={"driver": "nfs", "url": server.url})
    finally:
        server.stop()
