"""qcow2 volumes (clones are overlays backed by their master) as ext filesystems, without root.

``qemu-storage-daemon`` (Debian package qemu-system-common) exports the qcow2 image, with its
backing chain, as a raw view through FUSE onto a regular file; :mod:`.extfs` then works on
that file (at a partition's offset when asked). Writes land in the overlay only: the backing
master is opened read-only by QEMU. No ``/dev/nbd``, no mount of the filesystem, no root
(FUSE mounts by an ordinary user go through the setuid ``fusermount3``, package fuse3).

The daemon is a child of this process (recorded in its run directory, see
:mod:`encompass_core.rundir`, and sent SIGTERM if this process dies: it then unmounts and
releases the image's lock). Its QMP monitor is the last of its options, so its greeting says
every export is up: no sleeping. It is stopped with a QMP ``quit``; the monitor reaching
end-of-file says the daemon has flushed the image and exited.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess

from encompass_core import rundir
from encompass_core.customization.access import FileAccess, VolumeRef
from encompass_core.customization.openers.base import CannotOpen, describe_volume, seconds
from encompass_core.customization.openers.debugfs import DEFAULT_TIMEOUT, debugfs_path
from encompass_core.customization.openers.extfs import ExtFsAccess, ext_superblock, partition_offset
from encompass_core.errors import DriverError
from encompass_core.settings import Setting

_START_TIMEOUT = 60
_STOP_TIMEOUT = 120  # flushing a big overlay's metadata may take a while


def storage_daemon_path() -> str | None:
    """The qemu-storage-daemon executable, or None."""
    return shutil.which("qemu-storage-daemon")


def _mounted(path: str) -> bool:
    real = os.path.realpath(path)
    with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as mounts:
        return any(line.split()[4] == real for line in mounts if len(line.split()) > 4)


class FuseExport:
    """A qcow2 image (and its backing chain) exported as a raw file by qemu-storage-daemon."""

    def __init__(self, image_path: str, writable: bool, label: str, timeout: float = _START_TIMEOUT,
                 blockdevs: list[dict] | None = None) -> None:
        """Export ``image_path`` (qcow2 over a file) or, when given, ``blockdevs`` instead: block
        nodes as ``--blockdev`` takes them, the last one named ``disk`` (an iSCSI LUN, say)."""
        executable = storage_daemon_path()
        if executable is None:
            raise DriverError(
                f"cannot open {label}: qemu-storage-daemon is not installed; "
                "install the Debian package qemu-system-common"
            )
        self.label = label
        self.timeout = seconds(timeout)
        self.workdir = rundir.make_dir("qcow2-")
        self.raw_path = os.path.join(self.workdir, "raw")
        self._monitor: socket.socket | None = None
        self._process: subprocess.Popen | None = None
        open(self.raw_path, "wb").close()  # a FUSE export mounts onto a regular file
        # The monitor is one end of a socket pair handed to the daemon: no socket file (whose
        # path could be too long), and nobody else can reach it.
        monitor, daemon_end = socket.socketpair()
        read_only = not writable
        if blockdevs is None:
            blockdevs = [
                {"driver": "file", "node-name": "file", "filename": os.path.abspath(image_path),
                 "read-only": read_only},
                {"driver": "qcow2", "node-name": "disk", "file": "file", "read-only": read_only},
            ]
        command = [
            executable,
            *[arg for node in blockdevs for arg in ("--blockdev", json.dumps(node))],
            "--export", json.dumps({
                "type": "fuse", "id": "raw", "node-name": "disk", "mountpoint": self.raw_path,
                "writable": writable, "allow-other": "off",
            }),
            # Last: the daemon greets on its monitor only once every export above is up.
            "--chardev", f"socket,id=monitor,fd={daemon_end.fileno()}",
            "--monitor", "chardev=monitor",
        ]  # fmt: skip
        try:
            self._process = rundir.start(
                command, "qemu-storage-daemon", pass_fds=[daemon_end.fileno()],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )
        except DriverError:
            monitor.close()
            self._discard()
            raise
        finally:
            daemon_end.close()
        try:
            self._monitor = self._greet(monitor)
        except OSError as error:
            monitor.close()
            message = self._stop_process(error)
            self._discard()
            raise DriverError(
                f"qemu-storage-daemon could not export {label}: {message}; check that the "
                "image is not in use by a running machine and that /dev/fuse is usable"
            ) from error

    def _greet(self, monitor: socket.socket) -> socket.socket:
        monitor.settimeout(self.timeout)
        stream = monitor.makefile("rb")
        if not stream.readline():  # the QMP greeting; end-of-file: the daemon gave up
            raise ConnectionError("it exited")
        monitor.sendall(b'{"execute": "qmp_capabilities"}\n')
        stream.readline()
        if not _mounted(self.raw_path):
            raise ConnectionError("the export is not mounted")
        return monitor

    def _stop_process(self, error: BaseException | None = None) -> str:
        """End the daemon; what it said on stderr (or ``error``) for a message."""
        process, self._process = self._process, None
        if process is None:
            return str(error or "")
        if isinstance(error, TimeoutError):
            error = TimeoutError(f"it did not answer in {self.timeout:g} s")
        rundir.stop(process, grace=5.0)
        said = os.fsdecode(process.stderr.read() if process.stderr else b"").strip()
        if process.stderr:
            process.stderr.close()
        return said.splitlines()[-1] if said else str(error or f"status {process.returncode}")

    def _discard(self) -> None:
        if _mounted(self.raw_path):
            subprocess.run(["fusermount3", "-u", "-z", self.raw_path], capture_output=True, timeout=30,
                           check=False)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def close(self) -> None:
        """Stop the daemon (it flushes the image) and remove the mount point. Idempotent."""
        monitor, self._monitor = self._monitor, None
        if monitor is None:
            return
        try:
            monitor.settimeout(_STOP_TIMEOUT)
            monitor.sendall(b'{"execute": "quit"}\n')
            with contextlib.suppress(ConnectionResetError):
                while monitor.recv(65536):  # the monitor closes after the image is flushed
                    pass
            assert self._process is not None
            self._process.wait(timeout=_STOP_TIMEOUT)
            rundir.forget_helper(self._process.pid)
            self._process.stderr.close()
            self._process = None
        except (OSError, subprocess.TimeoutExpired) as error:
            self._stop_process(error)
            raise DriverError(
                f"qemu-storage-daemon did not stop cleanly for {self.label}: {error}; "
                f"check the image with qemu-img check"
            ) from error
        finally:
            monitor.close()
            self._discard()


class ExportedExtFsAccess(ExtFsAccess):
    """An ext filesystem reached through a :class:`FuseExport`; closing stops the export."""

    def __init__(self, volume: VolumeRef, writable: bool, export: FuseExport, timeout: float) -> None:
        self.export = export
        super().__init__(
            volume,
            writable,
            image_path=export.raw_path,
            offset=partition_offset(volume, export.raw_path),
            timeout=timeout,
        )

    def close(self) -> None:
        """Forget the helper files, then stop the export (flushing the overlay). Idempotent."""
        try:
            super().close()
        finally:
            self.export.close()


class Qcow2Opener:
    """Opens ext2/3/4 filesystems in qcow2 images (whole or one partition) without root."""

    name = "qcow2-fuse"
    settings = (Setting("timeout", float, DEFAULT_TIMEOUT, "seconds the daemon may take to start (a "
                        "minute at most) and a debugfs request may take", minimum=1),)

    def __init__(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        # Seconds the daemon may take to start (at most a minute) and a debugfs request may take.
        self.timeout = timeout

    def can_open(self, volume: VolumeRef) -> str | None:
        """None when the tools are here for a qcow2 volume, else why not."""
        if volume.format != "qcow2":
            return f"qcow2-fuse reads qcow2 images, not {volume.format} volumes"
        if storage_daemon_path() is None:
            return "qemu-storage-daemon is not installed (Debian package qemu-system-common)"
        if debugfs_path() is None:
            return "debugfs is not installed (Debian package e2fsprogs)"
        if not os.access("/dev/fuse", os.R_OK | os.W_OK) and shutil.which("fusermount3") is None:
            return "FUSE is not usable: /dev/fuse is not accessible and fusermount3 is missing"
        if not os.path.isfile(volume.path):
            return f"'{volume.path}' is not a file"
        return None

    def open(self, volume: VolumeRef, writable: bool) -> FileAccess:
        """Export the image, then open its ext filesystem; the caller closes the result."""
        export = FuseExport(volume.path, writable, describe_volume(volume), min(self.timeout, _START_TIMEOUT))
        try:
            offset = partition_offset(volume, export.raw_path)
            if ext_superblock(export.raw_path, offset) is None:
                raise CannotOpen(f"{describe_volume(volume)} holds no ext2/3/4 filesystem")
            return ExportedExtFsAccess(volume, writable, export, self.timeout)
        except BaseException:
            export.close()
            raise
