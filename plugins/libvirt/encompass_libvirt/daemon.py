"""A private libvirt daemon, for tests and ``encompass demo``, started without systemd.

``libvirtd`` runs in *session* mode (the mode of ``qemu:///session`` on a desktop) with its
runtime, configuration and cache directories under ``base_dir``, so it shares nothing with a
system daemon or with another test. Clients reach it through its socket::

    qemu+unix:///session?socket=<base_dir>/run/libvirt/libvirt-sock

As root, libvirtd would run in system mode (shared ``/run/libvirt``, QEMU as the
``libvirt-qemu`` user that only ``libvirt-daemon-system`` creates), so root starts it as
``nobody`` through ``setpriv``; QEMU then runs as ``nobody`` too. Files a guest uses must then
be reachable by that user: keep them under :attr:`DaemonDirs.guests`, or :meth:`PrivateDaemon.grant`
them. An ordinary user runs the daemon as themself.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path

import attrs

from encompass_core.errors import DriverError

#: Daemons that serve ``qemu:///session``, preferred first, with the socket each one opens.
DAEMONS = (("libvirtd", "libvirt-sock"), ("virtqemud", "virtqemud-sock"))
DAEMON_PACKAGES = "libvirt-daemon libvirt-daemon-driver-qemu qemu-system-x86"
SBIN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: The user root runs the daemon as.
ROOT_DAEMON_USER = "nobody"


@attrs.frozen
class DaemonDirs:
    """Where a private daemon keeps its state; everything lives under ``base``."""

    base: Path
    runtime: Path  # XDG_RUNTIME_DIR: sockets and pid files (under runtime/libvirt)
    config: Path  # XDG_CONFIG_HOME: domain and network definitions
    cache: Path  # XDG_CACHE_HOME: QEMU logs under cache/libvirt/qemu/log
    home: Path
    guests: Path  # owned by the daemon's user: disks and console logs of guests
    log: Path  # the daemon's own stderr

    @classmethod
    def under(cls, base: Path) -> DaemonDirs:
        return cls(base=base, runtime=base / "run", config=base / "config",
                   cache=base / "cache", home=base / "home", guests=base / "guests",
                   log=base / "libvirtd.log")


@attrs.define
class PrivateDaemon:
    """A running private libvirt daemon. ``stop()`` it, or use it as a context manager.

    ``process`` is None for a daemon found running (:func:`attach_private_daemon`), started by
    another process: it is then stopped through its pid file.
    """

    uri: str
    pid: int
    dirs: DaemonDirs
    user: str  # the user the daemon and its QEMU processes run as
    _process: subprocess.Popen | None = attrs.field(repr=False, default=None)

    def __enter__(self) -> PrivateDaemon:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def grant(self, path: Path, writable: bool = True) -> None:
        """Let the daemon's QEMU use ``path``: own it when ``writable``, else read it.

        Nothing to do when the daemon runs as the caller. Raises :class:`DriverError` when a
        parent directory keeps the daemon's user out.
        """
        entry = pwd.getpwnam(self.user)
        if entry.pw_uid == os.geteuid():
            return
        _check_reachable(Path(path), self.user, f"Put the file under {self.dirs.guests}")
        if writable:
            os.chown(path, entry.pw_uid, entry.pw_gid)
        else:
            os.chmod(path, Path(path).stat().st_mode | stat.S_IROTH)

    def stop(self, timeout: float = 30.0) -> None:
        """Destroy the guests it still runs, then stop the daemon and its virtlogd."""
        if self._process is None:
            if _alive(self.pid):
                _destroy_domains(self.uri)
                _terminate(self.pid, timeout)
        elif self._process.poll() is None:
            _destroy_domains(self.uri)
            self._process.terminate()
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        # libvirtd spawns virtlogd for session guests; it would linger for two minutes.
        pidfile = self.dirs.runtime / "libvirt" / "virtlogd.pid"
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(pidfile.read_text().strip()), signal.SIGTERM)


def start_private_daemon(base_dir: Path, timeout: float = 60.0) -> PrivateDaemon:
    """Start a private session libvirt daemon under ``base_dir`` and wait until it answers.

    Raises :class:`DriverError` when no daemon binary is installed (naming the Debian
    packages) or when the daemon exits or does not open its socket within ``timeout``
    seconds (with the tail of its log).
    """
    binary, socket_name = _find_daemon()
    user = ROOT_DAEMON_USER if os.geteuid() == 0 else _caller()
    dirs = DaemonDirs.under(Path(base_dir).resolve())
    sock = dirs.runtime / "libvirt" / socket_name
    if _answers(sock):
        raise DriverError(
            f"cannot start a private libvirt daemon in {dirs.base}: one already listens on "
            f"{sock}. Stop it first, or use another directory"
        )
    _make_dirs(dirs, user)
    if user != _caller():
        _check_reachable(dirs.runtime, user, "Use a base directory outside private ones.")
    env = {
        "PATH": SBIN_PATH,
        "HOME": str(dirs.home),
        "XDG_RUNTIME_DIR": str(dirs.runtime),
        "XDG_CONFIG_HOME": str(dirs.config),
        "XDG_CACHE_HOME": str(dirs.cache),
        "LANG": "C.UTF-8",
    }
    command = [binary]
    if os.geteuid() == 0:
        command = ["setpriv", f"--reuid={user}", f"--regid={_group_of(user)}",
                   "--clear-groups", "--", binary]
    with open(dirs.log, "ab") as log:
        process = subprocess.Popen(
            command, env=env, cwd=dirs.home, stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        _wait_for_socket(process, sock, dirs.log, timeout)
    except BaseException:
        if process.poll() is None:
            process.kill()
            process.wait()
        raise
    return PrivateDaemon(uri=f"qemu+unix:///session?socket={sock}", pid=process.pid,
                         dirs=dirs, user=user, process=process)


def attach_private_daemon(base_dir: Path) -> PrivateDaemon | None:
    """The private daemon already running under ``base_dir`` (started by any process), or None."""
    dirs = DaemonDirs.under(Path(base_dir).resolve())
    for name, socket_name in DAEMONS:
        sock = dirs.runtime / "libvirt" / socket_name
        if not _answers(sock):
            continue
        try:
            pid = int((dirs.runtime / "libvirt" / f"{name}.pid").read_text().strip())
        except (OSError, ValueError):
            continue
        user = pwd.getpwuid(dirs.runtime.stat().st_uid).pw_name
        return PrivateDaemon(uri=f"qemu+unix:///session?socket={sock}", pid=pid, dirs=dirs,
                             user=user)
    return None


def ensure_private_daemon(base_dir: Path, timeout: float = 60.0) -> PrivateDaemon:
    """The private daemon under ``base_dir``: the running one, else a new one."""
    return attach_private_daemon(base_dir) or start_private_daemon(base_dir, timeout)


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs; a zombie (reparented to an init that does not reap) does not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError, IndexError):
        stat_line = Path(f"/proc/{pid}/stat").read_text()
        return stat_line.rpartition(")")[2].split()[0] != "Z"
    return True


def _terminate(pid: int, timeout: float) -> None:
    """SIGTERM a process that is not our child, then SIGKILL it if it outlives ``timeout``."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    delay = 0.01
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(delay)
        delay = min(delay * 2, 0.2)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _caller() -> str:
    return pwd.getpwuid(os.geteuid()).pw_name


def _find_daemon() -> tuple[str, str]:
    for name, socket_name in DAEMONS:
        binary = shutil.which(name, path=SBIN_PATH)
        if binary:
            return binary, socket_name
    raise DriverError(
        "cannot start a private libvirt daemon: neither libvirtd nor virtqemud is installed. "
        f"Install the Debian packages: apt-get install {DAEMON_PACKAGES}"
    )


def _make_dirs(dirs: DaemonDirs, user: str) -> None:
    dirs.base.mkdir(parents=True, exist_ok=True)
    entry = pwd.getpwnam(user)
    for directory in (dirs.runtime, dirs.config, dirs.cache, dirs.home, dirs.guests):
        directory.mkdir(mode=0o700, exist_ok=True)
        if entry.pw_uid != os.geteuid():
            os.chown(directory, entry.pw_uid, entry.pw_gid)
    if entry.pw_uid != os.geteuid():
        # The daemon's user must traverse base to reach its directories.
        dirs.base.chmod(dirs.base.stat().st_mode | stat.S_IXOTH)


def _check_reachable(path: Path, user: str, advice: str) -> None:
    """Raise :class:`DriverError` unless ``user`` may traverse every parent of ``path``."""
    uid = pwd.getpwnam(user).pw_uid
    for parent in path.resolve().parents:
        info = parent.stat()
        if info.st_uid != uid and not info.st_mode & stat.S_IXOTH:
            raise DriverError(
                f"libvirt daemon user {user!r} cannot reach {path}: {parent} is closed to "
                f"others (mode {stat.filemode(info.st_mode)}). {advice}"
            )


def _group_of(user: str) -> int:
    return pwd.getpwnam(user).pw_gid


def _wait_for_socket(process: subprocess.Popen, sock: Path, log: Path, timeout: float) -> None:
    """Poll until the daemon accepts a connection on ``sock``; fail fast if it exits."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        if process.poll() is not None:
            raise DriverError(
                f"libvirt daemon exited with status {process.returncode} before opening "
                f"{sock}. Its log ({log}) ends with: {_tail(log)}"
            )
        if _answers(sock) and process.poll() is None:
            return
        if time.monotonic() > deadline:
            raise DriverError(
                f"libvirt daemon (pid {process.pid}) did not open {sock} within {timeout:.0f} s. "
                f"Its log ({log}) ends with: {_tail(log)}"
            )
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


def _answers(sock: Path) -> bool:
    """Whether something accepts connections on the unix socket ``sock``."""
    if not sock.exists():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(sock))
        except OSError:
            return False
    return True


def _destroy_domains(uri: str) -> None:
    """Best effort: QEMU processes outlive a stopped daemon, so destroy them first."""
    try:
        import libvirt
    except ImportError:
        return
    with contextlib.suppress(libvirt.libvirtError):
        connection = libvirt.open(uri)
        try:
            for domain in connection.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
                with contextlib.suppress(libvirt.libvirtError):
                    domain.destroy()
        finally:
            connection.close()


def _tail(log: Path, lines: int = 5) -> str:
    try:
        text = log.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(text[-lines:]) or "(empty)"
