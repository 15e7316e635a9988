"""Registers the built-in ``local`` storage driver through ``encompass_storage_drivers``.

A module of its own, light: every command that loads plugins registers this one, and the
driver (:mod:`.local`, with QEMU's tools, tgt and the copy helpers) is imported only when a
pool is first used (the record's factory).
"""

from __future__ import annotations

from .. import hookimpl
from ..lazy import lazy_factory
from ..records import StorageDriverRecord
from ..settings import Setting

#: What a ``[pools.NAME]`` table of driver ``local`` may hold.
SETTINGS = (
    Setting("path", str, help="the pool's folder, relative to encompass.toml's (default pools/NAME)"),
    Setting("max_chain_depth", int, 8, "clones of clones of ... before a full clone or flatten is needed",
            minimum=1),
    Setting("concurrency", int, 4, "clones made in this pool at once, at the most", minimum=1),
    Setting("copy_timeout", int, 3600, "seconds a whole-volume copy may take", minimum=1),
    Setting("export", str, "none", "how machines reach the volumes: as files of this host, or also over "
            "iSCSI through tgt (raw volumes)", choices=("none", "iscsi")),
    Setting("tgt_control", int, help="with export = \"iscsi\": the control socket number of the tgtd "
            "serving this pool (tgtd -C N)", minimum=0),
    Setting("iscsi_portal", str, "127.0.0.1:3260", "with export = \"iscsi\": the address:port machines "
            "reach tgtd at (tgtd --iscsi portal=...)"),
    Setting("iqn_prefix", str, "iqn.2026-12.org.encompass", "with export = \"iscsi\": the start of the "
            "target names (one target per machine)"),
)


@hookimpl
def encompass_storage_drivers():
    yield StorageDriverRecord(
        name="local",
        factory=lazy_factory("encompass_core.drivers.local", "LocalStorageDriver"),
        description="files (raw, qcow2) and directory trees in a local folder",
        debian_packages=("qemu-utils",),
        settings=SETTINGS,
    )
