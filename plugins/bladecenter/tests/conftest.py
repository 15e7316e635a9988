"""Fixtures: one lab chassis for the session (snmpd as nobody, blades in slots 1-4 that are QEMU
guests), drivers on it."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from bladecenter_testing import SLOTS, make_driver
from encompass_bladecenter.lab_peer import LabChassis, running_chassis

if shutil.which("snmpd", path="/usr/sbin:/usr/bin:/sbin") is None:
    pytest.skip("snmpd is not installed (apt-get install snmpd)", allow_module_level=True)
if shutil.which("qemu-system-x86_64") is None:
    pytest.skip("QEMU is not installed (apt-get install qemu-system-x86)", allow_module_level=True)



@pytest.fixture(scope="session")
def lab_base() -> Iterator[Path]:
    """A folder the chassis' user (nobody) can reach (pytest's own tmp is closed to others)."""
    base = Path(tempfile.mkdtemp(prefix="enc-bc-", dir="/var/tmp"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def chassis(lab_base: Path) -> Iterator[LabChassis]:
    """A 14-slot chassis with blades in slots 1-4 (no SAN: a blade powered on finds no disk)."""
    with running_chassis(lab_base / "fast", san_portal=None, slots=SLOTS) as running:
        yield running


@pytest.fixture
def driver(chassis: LabChassis):
    made = make_driver(chassis)
    yield made
    for slot in SLOTS:
        chassis.blade(slot).power_off()
    made.shutdown()
