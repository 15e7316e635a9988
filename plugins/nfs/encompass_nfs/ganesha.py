"""A real nfs-ganesha (NFSv3 and v4, VFS backend) with its rpcbind, in a private network and
mount namespace: for the plugin's tests and the lab (:mod:`.lab_peer`, ``encompass demo --pool nas``).

rpcbind binds every address and QEMU's NFS driver asks the portmapper on port 111, so both run
in a namespace of their own (``unshare -m -n``): lo up, an extra address on it (ganesha cannot
resolve 127.0.0.1 without one), a private ``/run``. A *holder* process keeps the namespace and
rpcbind; ganesha is started in it with ``nsenter`` and can be stopped and started again (a
server gone mid-copy). The caller's thread joins the network namespace (:meth:`Ganesha.entered`)
to reach it, and so do the processes it starts (qemu-img, qemu-storage-daemon, libvirtd, QEMU).
Needs root, Debian ``nfs-ganesha``, ``nfs-ganesha-vfs``, ``rpcbind``, ``libnfs-utils``.
"""


from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

CLONE_NEWNET = 0x40000000
# A killed test run takes its servers with it (the kernel kills them when it dies).
_DIE_WITH_US = ("setpriv", "--pdeathsig", "KILL", "--")
EXPORT = "/export"

_HOLDER = r"""
set -e
ip link set lo up
ip addr add 10.254.254.1/32 dev lo
ip addr add fd00:254::1/128 dev lo
mount -t tmpfs -o mode=0755 tmpfs /run
setpriv --pdeathsig KILL rpcbind -f -w &
RPCBIND=$!
until rpcinfo -p 127.0.0.1 >/dev/null 2>&1; do sleep 0.05; done
sleep infinity &
SLEEPER=$!
# Stopped with SIGTERM: end rpcbind and reap it (an orphan would stay a zombie here).
trap 'kill $RPCBIND $SLEEPER; wait; exit 0' TERM
echo ready
wait
"""

_CONFIG = """
NFS_CORE_PARAM {{ Bind_addr = 127.0.0.1; NFS_Port = 2049; MNT_Port = 20048; Protocols = 3,4;
  Enable_NLM = false; Enable_RQUOTA = false; Enable_UDP = false; mount_path_pseudo = true; }}
NFSV4 {{ Graceless = true; RecoveryRoot = {recovery}; }}
MDCACHE {{ Dir_Chunk = 0; }}
EXPORT {{ Export_Id = 1; Path = {export}; Pseudo = {pseudo}; Access_Type = RW; Squash = No_Root_Squash;
  Protocols = 3,4; Transports = TCP; SecType = sys; Attr_Expiration_Time = 0; FSAL {{ Name = VFS; }} }}
LOG {{ Default_Log_Level = WARN; }}
"""

_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def missing_tools() -> str | None:
    """Why the server cannot run here, or None."""
    for tool, package in (("ganesha.nfsd", "nfs-ganesha nfs-ganesha-vfs"), ("rpcbind", "rpcbind"),
                          ("rpcinfo", "rpcbind"), ("unshare", "util-linux"), ("nsenter", "util-linux"),
                          ("nfs-ls", "libnfs-utils"), ("ip", "iproute2")):
        if shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") is None:
            return f"{tool} is not installed (apt-get install {package})"
    if os.geteuid() != 0:
        return "nfs-ganesha in a private namespace needs root"
    return None


class Ganesha:
    """One server exporting ``base/export`` as ``nfs://127.0.0.1/export`` inside its namespace."""

    def __init__(self, base: Path) -> None:
        self.base = Path(base)
        self.export_dir = self.base / "export"
        self.export_dir.mkdir(parents=True, exist_ok=True)
        (self.base / "recovery").mkdir(exist_ok=True)
        self.config = self.base / "ganesha.conf"
        self.config.write_text(_CONFIG.format(recovery=self.base / "recovery", export=self.export_dir,
                                              pseudo=EXPORT))
        self.log = self.base / "ganesha.log"
        self.holder: subprocess.Popen | None = None
        self.server: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"nfs://127.0.0.1{EXPORT}"

    # -- life ------------------------------------------------------------------------------------
    def start(self) -> None:
        """Make the namespace with rpcbind (once), then start ganesha and wait until it serves."""
        if self.holder is None:
            self.holder = subprocess.Popen(
                [*_DIE_WITH_US, "unshare", "-m", "-n", "--propagation", "private", "--fork",
                 "--kill-child=KILL", "--", "sh", "-c", _HOLDER],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                start_new_session=True)
            assert self.holder.stdout is not None
            if self.holder.stdout.readline().strip() != b"ready":
                said = self.holder.stderr.read().decode() if self.holder.stderr else ""
                self.stop()
                raise RuntimeError(f"the namespace for nfs-ganesha did not start: {said}")
        pid = self.holder.pid
        self.server = subprocess.Popen(
            [*_DIE_WITH_US, "nsenter", f"--net=/proc/{pid}/ns/net", f"--mount=/proc/{pid}/ns/mnt", "--",
             "ganesha.nfsd", "-F", "-f", str(self.config), "-L", str(self.log),
             "-p", str(self.base / "ganesha.pid")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        self._wait_serving()

    def _wait_serving(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            probe = self.run(["nfs-ls", self.url], check=False)
            if probe.returncode == 0:
                return
            if self.server is not None and self.server.poll() is not None:
                raise RuntimeError(f"nfs-ganesha exited: see {self.log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"nfs-ganesha does not serve {self.url}: {probe.stderr.strip()}")
            time.sleep(0.1)

    def stop_server(self) -> None:
        """Stop ganesha (SIGKILL: a server gone at once), keeping the namespace."""
        server, self.server = self.server, None
        if server is not None and server.poll() is None:
            server.kill()
            server.wait(timeout=30)

    def stop(self) -> None:
        """Stop ganesha, rpcbind and the namespace."""
        self.stop_server()
        holder, self.holder = self.holder, None
        if holder is not None:
            # unshare --fork ignores SIGTERM and waits for its shell, which ends rpcbind.
            children = Path(f"/proc/{holder.pid}/task/{holder.pid}/children")
            with contextlib.suppress(OSError, ValueError):
                for child in children.read_text().split():
                    os.kill(int(child), signal.SIGTERM)
            try:
                holder.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(holder.pid, signal.SIGKILL)
                holder.wait(timeout=30)
            for stream in (holder.stdout, holder.stderr):
                if stream:
                    stream.close()

    # -- reaching it -----------------------------------------------------------------------------
    def run(self, command: list[str], check: bool = True,
            timeout: float = 120) -> subprocess.CompletedProcess:
        """Run a command in the server's network namespace."""
        assert self.holder is not None
        return subprocess.run(["nsenter", f"--net=/proc/{self.holder.pid}/ns/net", "--", *command],
                              capture_output=True, text=True, timeout=timeout, check=check)

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        """This thread (and what it starts) in the server's network namespace for the block."""
        assert self.holder is not None
        own = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net", os.O_RDONLY)
        theirs = os.open(f"/proc/{self.holder.pid}/ns/net", os.O_RDONLY)
        try:
            _setns(theirs)
            try:
                yield
            finally:
                _setns(own)
        finally:
            os.close(own)
            os.close(theirs)

    def contents(self) -> list[str]:
        """Every path under the export, relative, sorted (what the tests check)."""
        return sorted(str(path.relative_to(self.export_dir)) for path in self.export_dir.rglob("*"))
