"""The tests' PostgreSQL server leaves nothing behind, even when its test process is SIGKILLed."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pg_server as pg

KILLED_HOLDER = """
import os, signal, sys
sys.path.insert(0, {tests!r})
import pg_server
with pg_server.running_server() as server:
    print(server.root, server.port, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_a_killed_test_process_leaves_a_directory_the_next_start_removes(pg_server) -> None:
    tests = os.path.dirname(pg.__file__)
    done = subprocess.run([sys.executable, "-c", KILLED_HOLDER.format(tests=tests)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == -9, done.stderr
    root, port = done.stdout.split()
    root = Path(root)
    assert root.is_dir(), "SIGKILL skipped the cleanup, so the directory should still be there"
    deadline = time.monotonic() + 30
    while _listening(int(port)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _listening(int(port)), "the server outlived its killed test process"

    removed = pg.sweep_stale(root.parent)

    assert root in removed and not root.exists()
    # The session's own server (its holder, this process, is alive) is kept.
    assert pg_server.root.is_dir() and pg_server.root not in removed
    assert os.path.exists(pg_server.data / "PG_VERSION")

