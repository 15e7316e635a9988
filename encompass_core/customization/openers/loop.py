"""Loop mounts of raw images: any filesystem the kernel knows, but only as root and on request.

Off unless the opener is built with ``allow_loop_mount=True``, or, when built without saying,
unless the environment variable ``ENCOMPASS_ALLOW_LOOP_MOUNT`` is ``1``/``yes``/``true`` (a
setting of the utility server): mounting a guest's filesystem hands untrusted metadata to
the kernel. The mount uses ``nosuid,nodev,noexec``; files are then reached through
:mod:`.dirtree`, so the confinement rule is the same as for every other opener. Closing
unmounts.
"""

from __future__ import annotations

import os
import shutil

from encompass_core import rundir
from encompass_core.customization.access import FileAccess, VolumeRef
from encompass_core.customization.openers.base import describe_volume
from encompass_core.customization.openers.dirtree import DirTreeAccess
from encompass_core.customization.openers.partitions import find_partition
from encompass_core.errors import DriverError, NotFound
from encompass_core.settings import Setting

_MOUNT_TIMEOUT = 120  # seconds; unmounting flushes the filesystem


class LoopMountedAccess(DirTreeAccess):
    """A directory-tree access on a loop mount; closing unmounts and removes the mount point."""

    def __init__(self, volume: VolumeRef, writable: bool, mountpoint: str) -> None:
        self.mountpoint = mountpoint
        super().__init__(VolumeRef(mountpoint, "dir"), writable)
        self.volume = volume  # messages name the image, not the mount point

    def close(self) -> None:
        """Unmount (flushing the filesystem) and remove the mount point. Idempotent."""
        if self.closed:
            return
        super().close()
        done = rundir.run(["umount", self.mountpoint], "umount", _MOUNT_TIMEOUT)
        if done.returncode != 0:
            raise DriverError(
                f"cannot unmount {self.label} from {self.mountpoint}: {done.stderr.decode().strip()}; "
                f"unmount it by hand (umount {self.mountpoint})"
            )
        os.rmdir(self.mountpoint)


class LoopOpener:
    """Loop-mounts raw images (whole or one partition); root only, and only when allowed."""

    name = "loop"
    settings = (Setting("allow_loop_mount", bool, help="as root, mount raw images through a loop device "
                        "(default: $ENCOMPASS_ALLOW_LOOP_MOUNT)"),)

    def __init__(self, allow_loop_mount: bool | None = None) -> None:
        if allow_loop_mount is None:
            setting = os.environ.get("ENCOMPASS_ALLOW_LOOP_MOUNT", "")
            allow_loop_mount = setting.strip().lower() in ("1", "yes", "true")
        self.allow_loop_mount = allow_loop_mount

    def can_open(self, volume: VolumeRef) -> str | None:
        """None when allowed, running as root, for a raw image; else why not."""
        if not self.allow_loop_mount:
            return "loop mounts are not allowed (set ENCOMPASS_ALLOW_LOOP_MOUNT=1 to allow them)"
        if os.geteuid() != 0:
            return "loop mounts need root"
        if volume.format != "raw":
            return f"loop mounts take raw images, not {volume.format} volumes"
        if shutil.which("mount") is None:
            return "mount is not installed (Debian package mount)"
        if not os.path.isfile(volume.path):
            return f"'{volume.path}' is not a file"
        return None

    def open(self, volume: VolumeRef, writable: bool) -> FileAccess:
        """Mount the image (``-o loop,offset,sizelimit``); the caller closes the result."""
        options = ["loop", "nosuid", "nodev", "noexec", "rw" if writable else "ro"]
        if volume.partition is not None:
            partition = find_partition(volume.path, volume.partition)
            options += [f"offset={partition.offset}", f"sizelimit={partition.size}"]
        # In the run directory: if this process is killed, `encompass repair` unmounts it.
        mountpoint = rundir.make_dir("loop-")
        try:
            done = rundir.run(["mount", "-o", ",".join(options), volume.path, mountpoint], "mount",
                              _MOUNT_TIMEOUT)  # fmt: skip
        except DriverError:
            rundir.run(["umount", "-l", mountpoint], "umount", _MOUNT_TIMEOUT)
            os.rmdir(mountpoint)
            raise
        if done.returncode != 0:
            os.rmdir(mountpoint)
            raise DriverError(
                f"cannot loop-mount {describe_volume(volume)}: {done.stderr.decode().strip()}; "
                "check that loop devices exist (losetup -f) or use another opener"
            )
        try:
            return LoopMountedAccess(volume, writable, mountpoint)
        except (NotFound, DriverError):
            rundir.run(["umount", mountpoint], "umount", _MOUNT_TIMEOUT)
            os.rmdir(mountpoint)
            raise
