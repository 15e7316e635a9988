"""Fixtures: one nfs-ganesha for the session (in its own namespace), a clean export for each
test, and the test's thread inside the server's network namespace while it runs."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from nfs_testing import Ganesha, missing_tools

from encompass_core.testing.demo import DemoMaster, cached_demo_master


@pytest.fixture(scope="session")
def ganesha() -> Iterator[Ganesha]:
    """The server, started once; stopped with its namespace at the end."""
    why = missing_tools()
    if why:
        pytest.skip(why)
    base = Path(tempfile.mkdtemp(prefix="enc-nfs-", dir="/var/tmp"))
    server = Ganesha(base)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def demo_master() -> DemoMaster:
    """The demo master, built before any test enters the server's network namespace: its
    Debian packages are downloaded on first use, and nothing answers there but the server.
    (A session fixture: pytest sets it up before the test's ``server``.)"""
    return cached_demo_master()


@pytest.fixture
def server(ganesha: Ganesha) -> Iterator[Ganesha]:
    """The server with an empty export, this thread in its network namespace; the export is
    emptied again afterwards (and the server started again if a test stopped it)."""
    _empty(ganesha.export_dir)
    if ganesha.server is None:
        ganesha.start()
    with ganesha.entered():
        yield ganesha
    if ganesha.server is None:
        ganesha.start()
    _empty(ganesha.export_dir)


def _empty(folder: Path) -> None:
    for path in folder.iterdir():
        if path.is_dir() and not path.is_symlink():
            for sub in [path, *path.rglob("*")]:
                if sub.is_dir() and not sub.is_symlink():
                    sub.chmod(0o755)
            shutil.rmtree(path)
        else:
            path.unlink()
