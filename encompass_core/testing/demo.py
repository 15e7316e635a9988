"""The demo master for tests: built once per machine into one cache every test suite shares.

Core, scenario and plugin tests (libvirt, ds4xxx, nfs) that boot something call
:func:`cached_demo_master` (or wrap it in a session fixture): the first call builds the master
(about 10 s, downloading two Debian packages once), the next ones find it ready. The cache is
``$ENCOMPASS_TEST_CACHE`` (default ``/var/tmp/encompass-test-cache``; the master in
``demo-master-vN``, N its :data:`~encompass_core.demo.guest.BUILD_VERSION`), open to others, since a
hypervisor running as another user (``nobody``) may read the master's files.
"""

from __future__ import annotations

import os
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
