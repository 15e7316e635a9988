"""A private tgtd for tests: an iSCSI target daemon on 127.0.0.1, with its own control socket.

``with running_tgtd() as tgtd:`` starts ``tgtd -f --iscsi portal=127.0.0.1:PORT -C N`` on a
free port and a free control number, waits until it answers ``tgtadm``, and stops it at the end
with ``tgtadm --op delete --mode system`` once its targets are removed (tgtd ignores SIGTERM and
refuses to stop while it serves a target), killing it if it will not go.
Needs root and Debian ``tgt``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import attrs

from encompass_core.drivers.tgt import parse_show

SOCKET_DIR = Path("/var/run/tgtd")


@attrs.frozen
class Tgtd:
    """A running tgtd: its control number (tgtadm ``-C``) and portal."""

    control: int
    port: int
    log: Path

    @property
    def portal(self) -> str:
        return f"127.0.0.1:{self.port}"

    def tgtadm(self, *args: str) -> str:
        """Run ``tgtadm -C N --lld iscsi ARGS``; its output (raises on failure)."""
        return subprocess.run(["tgtadm", "-C", str(self.control), "--lld", "iscsi", *args],
                              capture_output=True, text=True, check=True, timeout=30).stdout


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def free_control() -> int:
    """A control number no tgtd uses (a live one holds the lock beside its socket)."""
    import fcntl

    base = 21000 + os.getpid() % 10000  # tgtd takes numbers up to 32767
    for control in range(base, base + 200):
        lock = SOCKET_DIR / f"socket.{control}.lock"
        if not lock.exists():
            return control
        with open(lock, "a") as handle:
            try:
                fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # held: a tgtd lives there
            fcntl.lockf(handle, fcntl.LOCK_UN)
            return control
    raise RuntimeError("no free tgtd control number")


@contextlib.contextmanager
def running_tgtd(workdir: Path) -> Iterator[Tgtd]:
    """Start a tgtd for the ``with`` block (its log in ``workdir``); stop it afterwards."""
    if shutil.which("tgtd", path="/usr/sbin:/usr/bin:/sbin") is None:
        import pytest

        pytest.skip("tgtd is not installed (apt-get install tgt)")
    SOCKET_DIR.mkdir(parents=True, exist_ok=True)
    control, port = free_control(), _free_port()
    log = workdir / "tgtd.log"
    with open(log, "wb") as out:
        daemon = subprocess.Popen(["tgtd", "-f", "--iscsi", f"portal=127.0.0.1:{port}", "-C", str(control)],
                                  stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    tgtd = Tgtd(control, port, log)
    try:
        deadline = time.monotonic() + 30
        while True:
            if daemon.poll() is not None:
                raise RuntimeError(f"tgtd exited at start: {log.read_text(errors='replace')}")
            try:
                tgtd.tgtadm("--op", "show", "--mode", "target")
                break
            except subprocess.CalledProcessError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield tgtd
    finally:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            # tgtd refuses to stop while it serves targets: remove them (sessions and all) first.
            for target in parse_show(tgtd.tgtadm("--op", "show", "--mode", "target")).values():
                tgtd.tgtadm("--op", "delete", "--force", "--mode", "target", "--tid", str(target.tid))
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            subprocess.run(["tgtadm", "-C", str(control), "--op", "delete", "--mode", "system"],
                           capture_output=True, timeout=30, check=False)
        try:
            daemon.wait(timeout=10)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
