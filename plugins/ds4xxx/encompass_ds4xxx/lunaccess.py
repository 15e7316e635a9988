"""Reaching a LUN from the utility server through QEMU's iSCSI driver (libiscsi; Debian package
qemu-block-extra): no kernel initiator, no /dev/sdX, no root.

Reads and customization go through a FUSE export of the LUN by qemu-storage-daemon (the core's
:class:`~encompass_core.customization.openers.qcow2.FuseExport`), so the volume openers see a
raw file; copies into a LUN go through ``qemu-img convert``.
"""

from __future__ import annotations

from pathlib import Path

import attrs

from encompass_core.customization.openers.qcow2 import FuseExport
from encompass_core.drivers import qemuimg


@attrs.frozen
class LunAddress:
    """Where an initiator finds a LUN: portal, target, LUN number (as iSCSI serves it)."""

    portal: str
    target: str
    lun: int
    initiator: str

    @property
    def url(self) -> str:
        return f"iscsi://{self.portal}/{self.target}/{self.lun}"

    def blockdev(self, read_only: bool) -> dict:
        """The LUN as a QEMU block node (``node-name`` ``disk``)."""
        return {"driver": "iscsi", "node-name": "disk", "transport": "tcp", "portal": self.portal,
                "target": self.target, "lun": self.lun, "initiator-name": self.initiator,
                "read-only": read_only}

    def image_opts(self) -> str:
        """The LUN as ``qemu-img --image-opts`` takes it."""
        return (f"driver=iscsi,transport=tcp,portal={self.portal},target={self.target},"
                f"lun={self.lun},initiator-name={self.initiator}")


def export(address: LunAddress, writable: bool, label: str) -> FuseExport:
    """The LUN as a raw file on the utility server (close the export when done)."""
    return FuseExport(address.url, writable, label, blockdevs=[address.blockdev(not writable)])


def write_to_lun(source: Path, source_format: str, address: LunAddress, timeout: float,
                 setting: str) -> None:
    """Copy a disk image (raw or qcow2, read through its chain) onto the LUN, which is at least
    as large; zeros are not written (a new logical drive reads as zeros already)."""
    qemuimg.qemu_img("convert", "-q", "-n", "-W", "-f", source_format, str(source),
                     "--target-image-opts", address.image_opts(), timeout=timeout, setting=setting)
