"""libguestfs: any filesystem it knows (NTFS, XFS, btrfs...), raw or qcow2, without root.

Slow to start (a small appliance VM boots: seconds with KVM, tens of seconds under TCG), so
it comes last. The Python binding (``guestfs``, Debian package python3-guestfs) is used when
it imports; in a virtualenv it usually does not, and a ``guestfish --listen`` server
(package libguestfs-tools) is driven instead, one ``guestfish --remote`` run per call.

Confinement: the filesystem is mounted inside the appliance, whose daemon resolves every path
chrooted into it, so symlinks are followed exactly as the guest would (absolute ones from the
volume's root, ``..`` clamped there), and the appliance has no access to this server's files.
Caller paths get the common check (absolute, no ``..`` above ``/``) of :mod:`.resolve`.
"""

from __future__ import annotations

import importlib
import os
import re
import select
import shutil
import stat as stat_module
import subprocess
from typing import Any

from encompass_core import rundir
from encompass_core.customization.access import FileAccess, FileStat, VolumeRef
from encompass_core.customization.openers.base import (
    FileAccessBase,
    check_link_target,
    check_mode,
    describe_volume,
    kind_of_mode,
    seconds,
    settle_mode_and_owner,
)
from encompass_core.customization.openers.resolve import Entry, check_path
from encompass_core.errors import Conflict, DriverError, InvalidInput, NotFound
from encompass_core.settings import Setting

DEFAULT_TIMEOUT = 300.0  # seconds; [openers.guestfs] timeout. Booting under TCG takes ~30-60 s
_GUESTFISH_PID = re.compile(r"GUESTFISH_PID=(\d+)")
# Where the appliance's QEMU reaches the daemon's socket (-chardev socket,path=...): a folder
# libguestfs makes in its socket directory (get-sockdir: /tmp for root whatever XDG_RUNTIME_DIR
# says, else XDG_RUNTIME_DIR or /tmp).
_SOCKET_FOLDER = re.compile(r"path=(/[^,\s]*/libguestfs[A-Za-z0-9]{6})/guestfsd\.sock")


def _socket_folders(server: int) -> list[str]:
    """The socket folders the appliance of guestfish server ``server`` uses: removed by
    libguestfs when the server exits, left behind when it is ended by a signal."""
    found = []
    for pid in rundir.tree(server):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                found += _SOCKET_FOLDER.findall(os.fsdecode(cmdline.read().replace(b"\0", b" ")))
        except OSError:
            continue  # ended meanwhile
    return found


def _entry(found: dict[str, int]) -> Entry:
    """An ``lstatns`` result as a directory entry."""
    mode = found["st_mode"]
    return Entry(kind_of_mode(mode), mode, found["st_uid"], found["st_gid"], found["st_size"])


def _binding() -> Any | None:
    try:
        return importlib.import_module("guestfs")
    except ImportError:
        return None


class _Guestfish:
    """The few libguestfs calls used here, sent to a ``guestfish --listen`` server.

    The server exits on a command's first error unless the command is prefixed with ``-``,
    and prints errors on its own stderr: so every command gets the ``-``, and the server's
    stderr, kept in a file, is read after each command to tell failure from success.

    The server (a daemon guestfish forks) and the appliance it boots are recorded in this
    process's run directory, and the appliance's files go there (``LIBGUESTFS_TMPDIR``), so
    ``encompass repair`` ends them if this process is killed. Every command has ``timeout``
    seconds; past it the server and its appliance are ended and the access is unusable.
    """

    def __init__(self, environment: dict[str, str], image: str, fmt: str, readonly: bool,
                 timeout: float) -> None:  # fmt: skip
        self.timeout = timeout
        self.workdir = rundir.make_dir("guestfish-")
        self.environment = dict(environment, LIBGUESTFS_TMPDIR=self.workdir)
        self.errors_path = os.path.join(self.workdir, "errors")
        self.pid: str | None = None
        command = ["guestfish", "--listen", "--format=" + fmt, "-a", image]
        if readonly:
            command.append("--ro")
        # The server it forks keeps our pipes open: read its one line, never wait for EOF.
        with open(self.errors_path, "wb") as errors:
            starter = rundir.start(command, "guestfish", stdout=subprocess.PIPE, stderr=errors,
                                   env=self.environment)  # fmt: skip
            assert starter.stdout is not None
            ready, _, _ = select.select([starter.stdout], [], [], timeout)
            first_line = starter.stdout.readline().decode(errors="replace") if ready else ""
            starter.stdout.close()
            match = _GUESTFISH_PID.search(first_line)
            if match is not None:
                self.pid = match.group(1)
                rundir.record_helper(int(self.pid), "guestfish")
            try:
                starter.wait(timeout=timeout)  # it exits once the server is forked
                rundir.forget_helper(starter.pid)
            except subprocess.TimeoutExpired:
                rundir.stop(starter, grace=2.0)
        if self.pid is None:
            self.kill()
            raise RuntimeError(f"guestfish --listen did not start: {self._new_errors(0) or 'no answer'}")

    def kill(self) -> None:
        """End the server and its appliance, remove the work files. Idempotent."""
        pid, self.pid = self.pid, None
        if pid is not None:
            folders = _socket_folders(int(pid))
            rundir.end_helper(int(pid), grace=5.0)
            for folder in folders:
                shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _new_errors(self, since: int) -> str:
        with open(self.errors_path, "rb") as errors:
            errors.seek(since)
            return errors.read().decode(errors="replace").strip()

    def call(self, command: str, *arguments: str) -> str:
        if self.pid is None:
            raise RuntimeError("the libguestfs appliance was stopped after an earlier failure")
        since = os.path.getsize(self.errors_path)
        try:
            done = rundir.run(["guestfish", f"--remote={self.pid}", "--", "-" + command, *arguments],
                              "guestfish", self.timeout, env=self.environment)  # fmt: skip
        except DriverError:
            self.kill()  # the appliance may be stuck in the command: end it
            raise RuntimeError(
                f"guestfish did not answer '{command}' in {self.timeout:g} s; it was stopped "
                "(raise [openers.guestfs] timeout in encompass.toml if it needs longer)"
            ) from None
        done.stdout = done.stdout.decode(errors="replace")
        failure = self._new_errors(since) or done.stderr.decode(errors="replace").strip()
        if done.returncode != 0 or failure:
            raise RuntimeError(failure.removeprefix("libguestfs: error: "))
        return done.stdout

    def launch(self) -> None:
        self.call("run")

    def mount(self, device: str, mountpoint: str) -> None:
        self.call("mount", device, mountpoint)

    def _stat_fields(self, command: str, path: str) -> dict[str, int]:
        fields = {}
        for line in self.call(command, path).splitlines():
            key, _, value = line.partition(":")
            fields[key.strip()] = int(value)
        return fields

    def lstatns(self, path: str) -> dict[str, int]:
        return self._stat_fields("lstatns", path)

    def statns(self, path: str) -> dict[str, int]:
        return self._stat_fields("statns", path)

    def readlink(self, path: str) -> str:
        return self.call("readlink", path).removesuffix("\n")

    def ls(self, path: str) -> list[str]:
        return self.call("ls", path).splitlines()

    # Contents (secrets among them) pass through private memory files (rundir.private_file).

    def read_file(self, path: str) -> bytes:
        with rundir.private_file() as (local, stream):
            self.call("download", path, local)
            stream.seek(0)
            return stream.read()

    def write(self, path: str, data: bytes) -> None:
        with rundir.private_file(data) as (local, _):
            self.call("upload", local, path)

    def chmod(self, mode: int, path: str) -> None:
        self.call("chmod", f"0{mode:o}", path)

    def chown(self, uid: int, gid: int, path: str) -> None:
        self.call("chown", str(uid), str(gid), path)

    def mkdir_mode(self, path: str, mode: int) -> None:
        self.call("mkdir-mode", path, f"0{mode:o}")

    def rm(self, path: str) -> None:
        self.call("rm", path)

    def rmdir(self, path: str) -> None:
        self.call("rmdir", path)

    def ln_s(self, target: str, linkname: str) -> None:
        self.call("ln-s", target, linkname)

    def lchown(self, uid: int, gid: int, path: str) -> None:
        self.call("lchown", str(uid), str(gid), path)

    def shutdown(self) -> None:
        try:
            self.call("umount-all")
            self.call("shutdown")  # synchronous: the appliance has flushed the disk
            self.call("exit")
        finally:
            self.kill()  # whatever still runs (after a failure) ends here


class GuestfsAccess(FileAccessBase):
    """The files of one filesystem of a disk image, through a libguestfs appliance."""

    def __init__(self, volume: VolumeRef, writable: bool, environment: dict[str, str],
                 timeout: float = DEFAULT_TIMEOUT) -> None:  # fmt: skip
        super().__init__(volume, writable)
        binding = _binding()
        fmt = volume.format
        self._g: Any = None
        try:
            if binding is not None:  # in-process: its appliance ends with this process
                os.environ.update(environment)  # the binding reads its backend from here
                self._g = binding.GuestFS(python_return_dict=True)
                self._g.add_drive_opts(volume.path, format=fmt, readonly=not writable)
            else:
                self._g = _Guestfish(environment, volume.path, fmt, not writable, timeout)
            self._g.launch()
            device = "/dev/sda" if volume.partition is None else f"/dev/sda{volume.partition}"
            self._g.mount(device, "/")
        except (RuntimeError, OSError) as error:
            if isinstance(self._g, _Guestfish):
                self._g.kill()
            elif self._g is not None:
                self._g.close()
            raise DriverError(
                f"libguestfs could not open {self.label}: {error}; run libguestfs-test-tool "
                "to check libguestfs, and check the volume's partition"
            ) from error

    def _call(self, what: str, method: str, *arguments: Any) -> Any:
        self._check_open()
        try:
            return getattr(self._g, method)(*arguments)
        except RuntimeError as error:
            text = str(error)
            if "No such file" in text or "ENOENT" in text:
                raise NotFound(f"{what} does not exist in {self.label}; check the path") from error
            raise DriverError(f"libguestfs failed on {what} in {self.label}: {text}") from error

    def _lstat(self, path: str) -> dict[str, int] | None:
        try:
            return self._call(path, "lstatns", path)
        except NotFound:
            return None

    def read(self, path: str) -> bytes:
        """Return the content of a regular file (symlinks followed inside the volume)."""
        check_path(path, self.label)
        return self._call(path, "read_file", path)

    def _write(self, path: str, data: bytes, mode: int | None, uid: int | None, gid: int | None) -> None:
        parts = check_path(path, self.label)
        try:  # the file replaced, through a final symlink as the write goes: it keeps its mode
            found = self._call(path, "statns", path)
        except NotFound:
            found = None
        old = _entry(found) if found is not None and kind_of_mode(found["st_mode"]) == "file" else None

        def directory_owner() -> tuple[int, int]:
            parent = self._lstat("/" + "/".join(parts[:-1])) or {"st_uid": 0, "st_gid": 0}
            return parent["st_uid"], parent["st_gid"]

        mode, uid, gid = settle_mode_and_owner(mode, uid, gid, old, directory_owner)
        self._call(path, "write", path, data)
        self._call(path, "chown", uid, gid, path)
        self._call(path, "chmod", mode, path)

    def exists(self, path: str) -> bool:
        """Whether the path exists (a dangling symlink exists)."""
        check_path(path, self.label)
        return self._lstat(path) is not None

    def stat(self, path: str) -> FileStat:
        """Describe the path itself, without following a final symlink."""
        check_path(path, self.label)
        found = self._lstat(path)
        if found is None:
            raise self._missing(path)
        kind = kind_of_mode(found["st_mode"])
        target = self._call(path, "readlink", path) if kind == "symlink" else None
        return FileStat(kind, found["st_size"], stat_module.S_IMODE(found["st_mode"]),
                        found["st_uid"], found["st_gid"], target)  # fmt: skip

    def listdir(self, path: str) -> list[str]:
        """Names in a directory, sorted, without ``.`` and ``..``."""
        check_path(path, self.label)
        return sorted(self._call(path, "ls", path))

    def mkdir(self, path: str, mode: int = 0o755, parents: bool = False) -> None:
        """Create a directory (and missing parents when asked)."""
        self._check_writable(path)
        check_mode(mode)
        parts = check_path(path, self.label)
        prefixes = range(1, len(parts) + 1) if parents else [len(parts)]
        for depth in prefixes:
            prefix = "/" + "/".join(parts[:depth])
            if self._lstat(prefix) is not None:
                if depth == len(parts) and not parents:
                    raise Conflict(f"cannot create directory {path} in {self.label}: it exists")
                continue
            self._call(prefix, "mkdir_mode", prefix, mode)

    def remove(self, path: str) -> None:
        """Remove a file or symlink (not a directory)."""
        self._check_writable(path)
        check_path(path, self.label)
        found = self._lstat(path)
        if found is None:
            raise self._missing(path)
        if kind_of_mode(found["st_mode"]) == "dir":
            raise InvalidInput(f"cannot remove {path} in {self.label}: it is a directory")
        self._call(path, "rm", path)

    def symlink(self, path: str, target: str) -> None:
        """Create the symlink ``path`` holding ``target``; owner: its directory's."""
        self._check_writable(path)
        parts = check_path(path, self.label)
        check_link_target(path, target, self.label)
        if self._lstat(path) is not None:
            raise Conflict(f"cannot create symlink {path} in {self.label}: it exists")
        parent = self._lstat("/" + "/".join(parts[:-1]))
        if parent is None:
            raise self._missing("/" + "/".join(parts[:-1]))
        self._call(path, "ln_s", target, path)
        self._call(path, "lchown", parent["st_uid"], parent["st_gid"], path)

    def rmdir(self, path: str) -> None:
        """Remove an empty directory."""
        self._check_writable(path)
        if not check_path(path, self.label):
            raise InvalidInput(f"cannot remove {path} in {self.label}: it is the volume's root")
        found = self._lstat(path)
        if found is None:
            raise self._missing(path)
        if kind_of_mode(found["st_mode"]) != "dir":
            raise InvalidInput(f"cannot remove {path} in {self.label}: it is not a directory")
        if self._call(path, "ls", path):
            raise Conflict(f"cannot remove directory {path} in {self.label}: it is not empty")
        self._call(path, "rmdir", path)

    def close(self) -> None:
        """Unmount, sync and stop the appliance. Idempotent."""
        if self.closed:
            return
        self.closed = True
        try:
            if isinstance(self._g, _Guestfish):
                self._g.shutdown()
            else:
                self._g.umount_all()
                self._g.shutdown()
                self._g.close()
        except RuntimeError as error:
            raise DriverError(f"libguestfs did not close {self.label} cleanly: {error}") from error


class GuestfsOpener:
    """Opens any filesystem libguestfs knows, in raw or qcow2 images. Imports nothing heavy
    until :meth:`open`."""

    name = "guestfs"
    settings = (
        Setting("force_tcg", bool, False, "run the appliance under software emulation (no usable KVM)"),
        Setting("backend", str, "direct", "libguestfs' backend (LIBGUESTFS_BACKEND)"),
        Setting("timeout", float, DEFAULT_TIMEOUT, "seconds one guestfish command (booting included) "
                "may take", minimum=1),
    )

    def __init__(self, force_tcg: bool = False, backend: str = "direct",
                 timeout: float = DEFAULT_TIMEOUT) -> None:  # fmt: skip
        self.force_tcg = force_tcg
        self.backend = backend
        self.timeout = seconds(timeout)  # seconds one guestfish command (booting included) may take

    def can_open(self, volume: VolumeRef) -> str | None:
        """None when libguestfs is here for a raw or qcow2 image, else why not."""
        if volume.format not in ("raw", "qcow2"):
            return f"guestfs opens disk images, not {volume.format} volumes"
        if shutil.which("guestfish") is None and _binding() is None:
            return "libguestfs is not installed (Debian packages libguestfs-tools, python3-guestfs)"
        if not os.path.isfile(volume.path):
            return f"'{volume.path}' is not a file"
        return None

    def open(self, volume: VolumeRef, writable: bool) -> FileAccess:
        """Boot the appliance and mount the volume's filesystem at its ``/``."""
        environment = dict(os.environ, LIBGUESTFS_BACKEND=self.backend)
        if self.force_tcg:
            environment["LIBGUESTFS_BACKEND_SETTINGS"] = "force_tcg"
        if volume.partition is not None and volume.partition < 1:
            raise InvalidInput(f"{describe_volume(volume)}: partitions are numbered from 1")
        return GuestfsAccess(volume, writable, environment, self.timeout)
