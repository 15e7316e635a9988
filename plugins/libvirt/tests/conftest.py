"""Fixtures: a private libvirt daemon, the demo master, an ENCOMPASS_HOME with a kvm platform.

Everything a guest touches lives under one base directory in /var/tmp, open to others (0755):
as root the daemon runs as ``nobody``, who must reach the guests' files (pytest's own
/tmp/pytest-of-root is closed to others).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

libvirt = pytest.importorskip("libvirt", reason="libvirt-python is not installed")

from encompass_libvirt.daemon import PrivateDaemon, start_private_daemon  # noqa: E402
from libvirt_testing import ENCOMPASS, cli_env  # noqa: E402

from encompass_core.demo.guest import DemoMaster  # noqa: E402
from encompass_core.testing.demo import cached_demo_master  # noqa: E402


class CliResult(NamedTuple):
    code: int
    out: str
    err: str


@pytest.fixture(scope="session")
def base_dir() -> Iterator[Path]:
    """A directory the daemon's user can traverse, removed at the end. Its name is short:
    QEMU's monitor socket lives under it, and a UNIX socket path holds 107 bytes at most."""
    base = Path(tempfile.mkdtemp(prefix="enc-libvirt-", dir="/var/tmp"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def daemon(base_dir: Path) -> Iterator[PrivateDaemon]:
    """A private libvirt daemon for the whole session, stopped (with its guests) at the end."""
    if not (shutil.which("libvirtd", path="/usr/sbin:/usr/bin:/sbin")
            or shutil.which("virtqemud", path="/usr/sbin:/usr/bin:/sbin")):
        pytest.skip("no libvirt daemon installed (apt-get install libvirt-daemon "
                    "libvirt-daemon-driver-qemu qemu-system-x86)")
    with start_private_daemon(base_dir / "libvirt") as running:
        yield running


@pytest.fixture(scope="session")
def demo_master() -> DemoMaster:
    """The demo master, built once and kept in the cache between runs."""
    return cached_demo_master()


@pytest.fixture
def home(base_dir: Path, request: pytest.FixtureRequest) -> Path:
    """A fresh ENCOMPASS_HOME under the base directory (so the daemon's user reaches the pool)."""
    path = Path(tempfile.mkdtemp(prefix=f"{request.node.name[:40]}-", dir=base_dir))
    path.chmod(0o755)
    home = path / "home"
    result = subprocess.run([str(ENCOMPASS), "init"], env=cli_env(home), capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stderr
    home.chmod(0o755)
    return home


@pytest.fixture
def run_cli(home: Path) -> Callable[..., CliResult]:
    """Run the real ``encompass`` command in ``home``."""

    def run(*args: object, timeout: float = 180) -> CliResult:
        done = subprocess.run([str(ENCOMPASS), *map(str, args)], env=cli_env(home),
                              capture_output=True, text=True, timeout=timeout, check=False)
        return CliResult(done.returncode, done.stdout, done.stderr)

    return run
