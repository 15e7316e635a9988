"""NTFS volumes (Windows system disks), mounted through the ``ntfs-3g`` FUSE driver as root.

ntfs-3g reads the untrusted filesystem in user space: the kernel only sees FUSE requests, so
no loop device and no kernel filesystem code is involved. It runs as a child of this process
(``-o no_detach``, recorded in the run directory, ended if this process dies), on a mount
point inside the run directory (mode 0700: no other user can look in while it is mounted),
with ``windows_names`` (names Windows could not use are refused, as Windows would) and
``nosuid,nodev,noexec``. Partitions and qcow2 images are first exported as a file holding
exactly the filesystem (:mod:`.region`).

Files are then reached as a directory tree (:mod:`.dirtree`), so the confinement rule is the
one of every opener: ntfs-3g shows symbolic links and junctions (reparse points) as symlinks,
and :mod:`.resolve` follows them with the volume as ``/``. Names are looked up as Windows does,
regardless of case: ``/windows/PANTHER`` finds ``/Windows/Panther``. Closing unmounts, waits
for ntfs-3g to write everything out and end, then stops the export.

A Windows that hibernated, or shut down with Fast Startup, leaves its filesystem in use:
ntfs-3g then refuses to write to it, and the error says so.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time

from encompass_core import rundir
from encompass_core.customization.access import FileAccess, VolumeRef
from encompass_core.customization.openers.base import describe_volume, seconds
from encompass_core.customization.openers.dirtree import DirTreeAccess, FdNamespace
from encompass_core.customization.openers.region import Region, is_ntfs, open_region, raw_problem
from encompass_core.customization.openers.resolve import spell_in
from encompass_core.errors import DriverError
from encompass_core.settings import Setting

DEFAULT_TIMEOUT = 60.0  # seconds to mount, and to unmount (which writes everything out)
_POLL = 0.02  # seconds between looks at the mount table while ntfs-3g starts


def ntfs3g_path() -> str | None:
    """The ntfs-3g executable (Debian package ntfs-3g), or None."""
    return shutil.which("ntfs-3g")


class CaseInsensitiveNamespace(FdNamespace):
    """Directory descriptors as in :mod:`.dirtree`; names match regardless of case."""

    def spell(self, directory: int, name: str) -> str:
        """``name`` as the directory spells it (see :func:`.resolve.spell_in`)."""
        if name in (".", "..") or self.lookup(directory, name) is not None:
            return name
        fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=directory)
        try:
            return spell_in(os.listdir(fd), name)
        finally:
            os.close(fd)


def _said(log_path: str) -> str:
    """The last lines ntfs-3g wrote that say something (its banner and notes left out)."""
    try:
        with open(log_path, encoding="utf-8", errors="replace") as log:
            lines = [line.strip() for line in log if line.strip()]
    except FileNotFoundError:
        return ""
    noise = ("Version ", "Requested device", "Mounted ", "Cmdline options", "Mount options",
             "Ownership and permissions", "Unmounting ")
    useful = [line for line in lines if not line.startswith(noise)]
    return " ".join(useful[-3:])


class NtfsAccess(DirTreeAccess):
    """The files of an NTFS filesystem mounted by ntfs-3g (see the module docstring)."""

    def __init__(self, volume: VolumeRef, writable: bool, region: Region, timeout: float) -> None:
        self.region = region
        self.timeout = timeout
        self.workdir = rundir.make_dir("ntfs-")
        self.mountpoint = os.path.join(self.workdir, "mnt")
        self.log_path = os.path.join(self.workdir, "ntfs-3g.log")
        os.mkdir(self.mountpoint, 0o700)
        self._process = self._mount(volume, writable)
        try:
            super().__init__(VolumeRef(self.mountpoint, "dir"), writable)
        except BaseException:
            self._unmount()
            raise
        self.volume = volume  # messages name the image, not the mount point
        self._names = CaseInsensitiveNamespace(self._root_fd, self.label)

    def _mount(self, volume: VolumeRef, writable: bool) -> subprocess.Popen:
        executable = ntfs3g_path()
        if executable is None:
            raise DriverError(f"cannot open {describe_volume(volume)}: ntfs-3g is not installed; "
                              "install the Debian package ntfs-3g")
        options = ["no_detach", "windows_names", "nosuid", "nodev", "noexec"]
        if not writable:
            options.append("ro")
        with open(self.log_path, "wb") as log:
            process = rundir.start([executable, "-o", ",".join(options), self.region.path, self.mountpoint],
                                   "ntfs-3g", stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.monotonic() + self.timeout
        while not os.path.ismount(self.mountpoint):
            if process.poll() is not None or time.monotonic() > deadline:
                rundir.stop(process, grace=2.0)
                said = _said(self.log_path) or f"ntfs-3g ended with status {process.returncode}"
                shutil.rmtree(self.workdir, ignore_errors=True)
                in_use = "hibernat" in said or "unclean" in said
                advice = ("; if Windows hibernated or shut down with Fast Startup, boot it and shut "
                          "it down fully (shutdown /s /t 0)") if in_use else ""
                raise DriverError(f"ntfs-3g could not mount {describe_volume(volume)}: {said}{advice}")
            time.sleep(_POLL)  # ntfs-3g says nothing when the mount is up: look again
        return process

    def _unmount(self) -> None:
        """Unmount, wait for ntfs-3g to write everything out and end; remove the work files."""
        process, self._process = getattr(self, "_process", None), None
        if process is None:
            return
        done = rundir.run(["umount", self.mountpoint], "umount", self.timeout)
        if done.returncode != 0 and os.path.ismount(self.mountpoint):
            raise DriverError(
                f"cannot unmount {self.label} from {self.mountpoint}: {done.stderr.decode().strip()}; "
                f"unmount it by hand (umount {self.mountpoint})"
            )
        try:
            process.wait(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            rundir.stop(process, grace=2.0)
            raise DriverError(f"ntfs-3g did not finish writing {self.label} in {self.timeout:g} s; "
                              "check the filesystem with ntfsfix -n") from None
        finally:
            rundir.forget_helper(process.pid)
        if process.returncode != 0:
            raise DriverError(f"ntfs-3g failed writing {self.label} out: {_said(self.log_path)}; "
                              "check the filesystem with ntfsfix -n")
        shutil.rmtree(self.workdir, ignore_errors=True)

    def close(self) -> None:
        """Unmount (ntfs-3g writes the changes out), then stop the export. Idempotent."""
        if self.closed:
            return
        try:
            super().close()
            self._unmount()
        finally:
            self.region.close()


class NtfsOpener:
    """Opens NTFS filesystems in raw or qcow2 images (whole or one partition) through ntfs-3g."""

    name = "ntfs"
    settings = (Setting("timeout", float, DEFAULT_TIMEOUT, "seconds ntfs-3g may take to mount "
                        "and to write everything out when unmounting", minimum=1),)

    def __init__(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.timeout = seconds(timeout)

    def can_open(self, volume: VolumeRef) -> str | None:
        """None when ntfs-3g can run here and (for a raw image) the place holds NTFS, else why."""
        if volume.format not in ("raw", "qcow2"):
            return f"ntfs reads raw and qcow2 images, not {volume.format} volumes"
        if ntfs3g_path() is None:
            return "ntfs-3g is not installed (Debian package ntfs-3g)"
        if os.geteuid() != 0:
            return "ntfs-3g mounts need root"
        if not os.access("/dev/fuse", os.R_OK | os.W_OK):
            return "FUSE is not usable: /dev/fuse is not accessible"
        if not os.path.isfile(volume.path):
            return f"'{volume.path}' is not a file"
        return raw_problem(volume, is_ntfs, "NTFS")

    def open(self, volume: VolumeRef, writable: bool) -> FileAccess:
        """Mount the filesystem; close the result (or use it in a ``with`` block)."""
        return open_region(volume, writable, self.timeout, True, is_ntfs, "NTFS",
                           lambda region: NtfsAccess(volume, writable, region, self.timeout))
