"""The demo master for tests: built once per machine into one cache every test suite shares.

Core, scenario and plugin tests (libvirt, ds4xxx, nfs) that boot something call
:func:`cached_demo_master` (or wrap it in a session fixture): the first call builds the master
(about 10 s, downloading two Debian packages once), the next ones find it ready. The cache is
``$ENCOMPASS_TEST_CACHE`` (default ``/var/tmp/encompass-test-cache``; the master in
``demo-master-vN``, N its :data:`~encompass_core.demo.guest.BUILD_VERSION`), open to others, since a
hypervisor running as another user (``nobody``) may read the master's files.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from encompass_core.demo.guest import BUILD_VERSION, DemoMaster, build_demo_master

DEFAULT_CACHE = Path("/var/tmp/encompass-test-cache")


def test_cache() -> Path:
    """The tests' cache directory (created, traversable by others)."""
    cache = Path(os.environ.get("ENCOMPASS_TEST_CACHE", DEFAULT_CACHE))
    cache.mkdir(parents=True, exist_ok=True)
    cache.chmod(0o755)
    return cache


def cached_demo_master() -> DemoMaster:
    """The demo master (a whole disk firmware boots, root on partition 2), built on first use.

    Never write to its files: copy or clone ``master.disk`` first.
    """
    cache = test_cache()
    # One folder per layout: a checkout building another version beside this one (a branch not
    # merged yet) must not replace the disk under a test reading it.
    return build_demo_master(cache / f"demo-master-v{BUILD_VERSION}", cache / "packages")


def firmware_boot(drive: Sequence[str], console: Path, until: str, timeout: float = 180.0) -> str:
    """Boot a disk by the PC firmware in a plain QEMU (TCG, no network) until its serial console,
    written to ``console``, shows ``until`` or the guest powers off; the console's text.

    ``drive`` is QEMU's arguments for the disk (``-drive file=...,if=virtio``, a SCSI bus, an
    ``nfs://`` URL...). Fails, quoting QEMU's last words and the console, when ``until`` never shows.
    """
    qemu_binary = shutil.which("qemu-system-x86_64")
    if qemu_binary is None:
        raise AssertionError("qemu-system-x86_64 is not installed (Debian package qemu-system-x86)")
    qemu = subprocess.Popen(
        [qemu_binary, "-machine", "accel=tcg", "-m", "256", "-no-reboot", "-display", "none",
         "-monitor", "none", "-serial", f"file:{console}", "-nic", "none", *drive],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    said = b""
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and qemu.poll() is None:
            if console.exists() and until in console.read_text(errors="replace"):
                break
            time.sleep(0.2)  # the console file is the only signal a guest gives
        with contextlib.suppress(subprocess.TimeoutExpired):
            qemu.wait(timeout=30)  # the demo guest powers itself off after its hostname line
    finally:
        if qemu.poll() is None:
            qemu.kill()
            qemu.wait()
        if qemu.stderr is not None:
            said = qemu.stderr.read()
            qemu.stderr.close()
    text = console.read_text(errors="replace") if console.exists() else ""
    assert until in text, f"QEMU said: {said.decode(errors='replace')[-1000:]}\nconsole: {text[-2000:]}"
    return text
