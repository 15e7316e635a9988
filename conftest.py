"""Repository-wide pytest settings: in CI, a skipped test fails the run.

Every peer the tests need (qemu, libvirt, libguestfs, ...) is installed by
``./setup_plugins --all --test``; a skip there means a missing install step, which must not
pass for a green run.
"""

import os

import pytest


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if os.environ.get("CI") and skipped and exitstatus == 0:
        reporter.write_line(f"CI: {skipped} test(s) skipped; in CI every test must run", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
