"""What a machine is told about a volume of the export: the path its host sees it at (``file``,
``dir``, from the pool's ``mounts``), or the NFS address itself (``nfs``, with what a diskless
kernel's ``nfsroot=`` takes for a tree)."""

from __future__ import annotations

from typing import Any

from encompass_core.contracts import Attachment, AttachRequest
from encompass_core.errors import NotSupported
from encompass_core.model import Machine, Volume

from .nfsurl import NfsUrl


def mount_for(mounts: dict[str, str], machine: Machine, default: str | None) -> str | None:
    """Where the machine's hypervisor host sees the export: by the host's name (as the platform
    discovered it), else the platform's name, else ``"*"``, else ``default``."""
    host = machine.extra.get("host")
    hostname = host.get("hostname") if isinstance(host, dict) else host
    for key in (hostname, machine.platform, "*"):
        if key and key in mounts:
            return mounts[key].rstrip("/") or "/"
    return default


def nfs_details(url: NfsUrl, rel: str, tree: bool) -> tuple[str, dict[str, Any]]:
    """The ``server:/export/path`` address of ``rel`` and the details a platform may need."""
    path = f"{url.export}/{rel}"
    address = f"{url.host}:{path}"
    details: dict[str, Any] = {"server": url.host, "export": url.export, "path": path,
                               "url": url.of(rel), "version": url.version, **url.identity()}
    if tree:  # a kernel mounts it as its root
        details["nfsroot"] = f"{address},vers={url.version},tcp"
    return address, details


def attach(pool: str, url: NfsUrl | None, mounts: dict[str, str], default: str | None,
           offered: tuple[str, ...], volume: Volume, rel: str, machine: Machine,
           request: AttachRequest) -> Attachment:
    """The first kind of ``request.kinds`` this pool can give for the volume."""
    fits = ("dir", "nfs") if volume.format == "dir" else ("file", "nfs")
    for kind in request.kinds:
        if kind not in fits or kind not in offered:
            continue
        details: dict[str, Any] = {}
        if kind == "nfs":
            assert url is not None  # offered only with a url
            address, details = nfs_details(url, rel, volume.format == "dir")
        else:
            mount = mount_for(mounts, machine, default)
            if mount is None:
                continue
            address = f"{mount}/{rel}"
        return Attachment(index=volume.index, kind=kind, address=address, format=volume.format,
                          readonly=volume.readonly, boot=request.boot, lun=request.lun,
                          details=details)
    kinds = [kind for kind in fits if kind in offered]
    hint = "" if mounts or default else " (set mounts = {HOST = \"/mount/point\"} for file access)"
    raise NotSupported(f"pool '{pool}' offers its {volume.format} volumes as {', '.join(kinds) or 'nothing'} "
                       f"to machine '{machine.name}'; the machine takes {', '.join(request.kinds)}{hint}")
