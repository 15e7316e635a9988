"""qcow2 volumes (clones are overlays backed by their master) as ext filesystems, without root.

``qemu-storage-daemon`` (Debian package qemu-system-common) exports the qcow2 image, with its
backing chain, as a raw view through FUSE onto a regular file; :mod:`.extfs` then works on
that file (at a partition's offset when asked). Writes land in the overlay only: the backing
master is opened read-only by QEMU. No ``/dev/nbd``, no mount of the filesystem, no root
(FUSE mounts by an ordinary user go through the setuid ``fusermount3``, package fuse3).

The daemon is started with ``--daemonize``, whose parent exits only once every export is up
(or failed): that is the readiness signal, no sleeping. It is stopped with a QMP ``quit``;
the monitor connection reaching end-of-file says the daemon has flushed the image and exited.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import tempfile

from encompass_core.customization.access import FileAccess, VolumeRef
from encompass_core.customization.openers.base import CannotOpen, describe_volume
from encompass_core.customization.openers.debugfs import debugfs_path
from encompass_core.customization.openers.extfs import ExtFsAccess, ext_superblock, partition_offset
from encompass_core.errors import DriverError

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

    def __init__(self, image_path: str, writable: bool, label: str) -> None:
        executable = storage_daemon_path()
        if executable is None:
            raise DriverError(
                f"cannot open {label}: qemu-storage-daemon is not installed; "
                "install the Debian package qemu-system-common"
            )
        self.label = label
        self.workdir = tempfile.mkdtemp(prefix="encompass-qcow2-")
        self.raw_path = os.path.join(self.workdir, "raw")
        self._monitor: socket.socket | None = None
        self._process: int | None = None  # a pidfd: the daemon is not our child
        self._pidfile = os.path.join(self.workdir, "daemon.pid")
        open(self.raw_path, "wb").close()  # a FUSE export mounts onto a regular file
        monitor_path = os.path.join(self.workdir, "qmp.sock")
        read_only = not writable
        command = [
            executable,
            "--daemonize",
            "--pidfile", self._pidfile,
            "--blockdev", json.dumps({
                "driver": "file", "node-name": "file", "filename": os.path.abspath(image_path),
                "read-only": read_only,
            }),
            "--blockdev", json.dumps({
                "driver": "qcow2", "node-name": "disk", "file": "file", "read-only": read_only,
            }),
            "--export", json.dumps({
                "type": "fuse", "id": "raw", "node-name": "disk", "mountpoint": self.raw_path,
                "writable": writable, "allow-other": "off",
            }),
            "--chardev", f"socket,id=monitor,path={monitor_path},server=on,wait=off",
            "--monitor", "chardev=monitor",
        ]  # fmt: skip
        try:
            started = subprocess.run(command, capture_output=True, timeout=_START_TIMEOUT, check=False)
        except (OSError, subprocess.TimeoutExpired) as error:
            self._discard()
            raise DriverError(f"qemu-storage-daemon did not start for {label}: {error}") from error
        if started.returncode != 0 or not _mounted(self.raw_path):
            message = os.fsdecode(started.stderr).strip() or f"status {started.returncode}"
            self._discard()
            raise DriverError(
                f"qemu-storage-daemon could not export {label}: {message}; check that the "
                "image is not in use by a running machine and that /dev/fuse is usable"
            )
        try:
            with open(self._pidfile) as pidfile:
                self._process = os.pidfd_open(int(pidfile.read().strip()))
            self._monitor = self._connect(monitor_path)
        except (OSError, ValueError) as error:
            self._kill()
            self._discard()
            raise DriverError(f"cannot talk to qemu-storage-daemon for {label}: {error}") from error

    def _connect(self, path: str) -> socket.socket:
        monitor = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        monitor.settimeout(_START_TIMEOUT)
        monitor.connect(path)
        stream = monitor.makefile("rb")
        stream.readline()  # the QMP greeting
        monitor.sendall(b'{"execute": "qmp_capabilities"}\n')
        stream.readline()
        return monitor

    def _kill(self) -> None:
        if self._process is not None:
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(self._process, signal.SIGTERM)
            self._wait_exit()

    def _wait_exit(self) -> bool:
        """Wait for the daemon to exit (its pidfd becomes readable); False on timeout."""
        process, self._process = self._process, None
        if process is None:
            return True
        try:
            readable, _, _ = select.select([process], [], [], _STOP_TIMEOUT)
            return bool(readable)
        finally:
            os.close(process)

    def _discard(self) -> None:
        if _mounted(self.raw_path):
            subprocess.run(["fusermount3", "-u", self.raw_path], capture_output=True, check=False)
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
            if not self._wait_exit():
                raise TimeoutError("it is still running")
        except OSError as error:
            self._kill()
            raise DriverError(
                f"qemu-storage-daemon did not stop cleanly for {self.label}: {error}; "
                f"check the image with qemu-img check"
            ) from error
        finally:
            monitor.close()
            self._discard()


class ExportedExtFsAccess(ExtFsAccess):
    """An ext filesystem reached through a :class:`FuseExport`; closing stops the export."""

    def __init__(self, volume: VolumeRef, writable: bool, export: FuseExport) -> None:
        self.export = export
        super().__init__(
            volume,
            writable,
            image_path=export.raw_path,
            offset=partition_offset(volume, export.raw_path),
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
        export = FuseExport(volume.path, writable, describe_volume(volume))
        try:
            offset = partition_offset(volume, export.raw_path)
            if ext_superblock(export.raw_path, offset) is None:
                raise CannotOpen(f"{describe_volume(volume)} holds no ext2/3/4 filesystem")
            return ExportedExtFsAccess(volume, writable, export)
        except BaseException:
            export.close()
            raise
