"""The volume opener of encompass-template: reaches the files of volumes kept as tar archives
(format ``tar``), such as a container's root file system.

An opener implements :class:`encompass_core.customization.access.VolumeOpener`: ``can_open``
says why it cannot open a volume (or None), ``open`` returns a
:class:`~encompass_core.customization.access.FileAccess`. This one unpacks the archive into a
private directory (the ``tar`` filter refuses members that would land outside it; symlinks
stay as the guest has them), lets the core's directory-tree access do the confined reads and
writes, and packs the archive again (atomically) when a writable access is closed.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from pathlib import Path

from encompass_core.customization.access import FileAccess, VolumeRef
from encompass_core.customization.openers.dirtree import DirTreeAccess
from encompass_core.errors import DriverError
from encompass_core.settings import Setting


class TarAccess(DirTreeAccess):
    """The files of an unpacked archive; packed back into it on close when writable."""

    def __init__(self, volume: VolumeRef, writable: bool, scratch: Path) -> None:
        super().__init__(VolumeRef(path=str(scratch / "root"), format="dir"), writable)
        self.archive = Path(volume.path)
        self.scratch = scratch

    def close(self) -> None:
        """Pack the files back when writable (atomically), then remove the unpacked copy."""
        if self.closed:
            return
        try:
            super().close()
            if self.writable:
                packed = self.archive.with_name(f".{self.archive.name}.packing")
                with tarfile.open(packed, "w") as archive:
                    for name in sorted(os.listdir(self.scratch / "root")):
                        archive.add(self.scratch / "root" / name, arcname=name)
                os.replace(packed, self.archive)
        finally:
            shutil.rmtree(self.scratch, ignore_errors=True)


class TemplateOpener:
    """Opens volumes of format ``tar``: a file tree packed in a tar archive."""

    name = "template"
    #: What an ``[openers.template]`` table may hold, given to the factory as keyword arguments.
    settings = (Setting("scratch", str, help="where archives are unpacked (default: the system's "
                        "temporary directory)"),)

    def __init__(self, scratch: str | None = None) -> None:
        self.scratch = scratch

    def can_open(self, volume: VolumeRef) -> str | None:
        """None when this opener can open the volume, else the reason it cannot (one line)."""
        if volume.format != "tar":
            return f"{self.name} opens tar archives, not {volume.format} volumes"
        if volume.partition is not None:
            return "a tar archive has no partitions"
        if not os.path.isfile(volume.path):
            return f"{volume.path} is not a file"
        return None

    def open(self, volume: VolumeRef, writable: bool) -> FileAccess:
        """Open the volume; the caller closes the returned access (it is a context manager too)."""
        scratch = Path(tempfile.mkdtemp(prefix="encompass-tar-", dir=self.scratch))
        try:
            (scratch / "root").mkdir()
            with tarfile.open(volume.path) as archive:
                archive.extractall(scratch / "root", filter="tar")
            return TarAccess(volume, writable, scratch)
        except (OSError, tarfile.TarError) as exc:
            shutil.rmtree(scratch, ignore_errors=True)
            raise DriverError(f"cannot unpack {volume.path}: {exc}") from exc
