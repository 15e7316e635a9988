"""Fixtures: sushy-emulator with its fake driver for the fast tests, and Redfish platforms
configured against it with the BMC password in a 0600 file or an environment variable."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, uninstalled
sys.path.insert(0, str(Path(__file__).resolve().parent))  # redfish_testing

from redfish_testing import PASSWORD, Emulator, fake_system, make_driver, running_emulator  # noqa: E402

#: The fake driver's systems: the conformance suite's machine and two for the other tests.
FAKE_SYSTEMS = [fake_system(1, "rack1-srv1"), fake_system(2, "rack1-srv2"), fake_system(3, "rack1-srv3")]


@pytest.fixture(scope="session")
def fake_emulator(tmp_path_factory) -> Emulator:
    """sushy-emulator serving the fake driver's systems, for the whole session."""
    with running_emulator(tmp_path_factory.mktemp("sushy-fake"),
                          {"SUSHY_EMULATOR_FAKE_DRIVER": True,
                           "SUSHY_EMULATOR_FAKE_SYSTEMS": FAKE_SYSTEMS}, []) as emulator:
        yield emulator


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    path = tmp_path / "bmc-password"
    path.write_text(f"{PASSWORD}\n")
    path.chmod(0o600)
    return path


@pytest.fixture
def fake_driver(tmp_path, fake_emulator, password_file):
    driver = make_driver(tmp_path, {"address": fake_emulator.url, "username": fake_emulator.username,
                                    "password_file": str(password_file), "power_timeout": 60})
    yield driver
    driver.shutdown()
