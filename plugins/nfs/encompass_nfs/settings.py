"""The settings of an ``[pools.NAME] driver = "nfs"`` table: checked against ``encompass.toml``
before the driver (and libnfs) is imported."""

from __future__ import annotations

from encompass_core.settings import Setting

SETTINGS = (
    Setting("url", str, help="the export, nfs://HOST/EXPORT (libnfs; add ?version=4, or "
                             "?nfsport=P&mountport=M to skip the portmapper)"),
    Setting("path", str, help="where this host has the export mounted (copies stay on the server); "
                              "with url, the same export"),
    Setting("mounts", dict, help="where each hypervisor host sees the export mounted: host name "
                                 "(or platform name, or \"*\") = mount point"),
    Setting("max_chain_depth", int, 8, "clones of clones of ... before a full clone or flatten is "
                                       "needed", minimum=1),
    Setting("concurrency", int, 4, "clones made in this pool at once, at the most", minimum=1),
    Setting("copy_timeout", int, 3600, "seconds a whole-volume copy may take", minimum=1),
    Setting("timeout", int, 60, "seconds one NFS request may wait for the server (libnfs)", minimum=1),
)
