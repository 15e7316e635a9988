"""Fixtures: a tgt daemon on 127.0.0.1, the SMcli simulator in front of it, ds4xxx pools.

Each test gets its own tgtd (its own port and control socket, from the core's test helper) and
its own simulated subsystem, torn down at the end.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from ds4xxx_testing import (
    ARRAY_SIZE,
    CONTROLLERS,
    SMCLI,
    UTILITY_INITIATOR,
    Simulator,
    make_driver,
)
from encompass_ds4xxx.driver import Ds4xxxStorageDriver
from encompass_ds4xxx.lab_peer import init_subsystem

from encompass_core.testing.tgt import Tgtd, running_tgtd

if shutil.which("tgtd") is None or shutil.which("iscsi-ls") is None:
    pytest.skip("tgt and libiscsi-bin are not installed (apt-get install tgt libiscsi-bin "
                "qemu-block-extra)", allow_module_level=True)


@pytest.fixture
def tgtd(tmp_path: Path) -> Iterator[Tgtd]:
    """A tgt daemon serving iSCSI on 127.0.0.1, ready when yielded."""
    with running_tgtd(tmp_path) as daemon:
        yield daemon


@pytest.fixture
def simulator(tmp_path: Path, tgtd: Tgtd, monkeypatch) -> Simulator:
    """A DS4700 with one array of 256 MB, no logical drives, no hosts."""
    state = tmp_path / "sim" / "state.json"
    state.parent.mkdir()
    monkeypatch.setenv("SMCLI_SIM_STATE", str(state))
    init_subsystem(SMCLI, state, tgtd.portal, tgtd.control, tmp_path / "sim" / "drives", ARRAY_SIZE)
    return Simulator(state, tgtd)


@pytest.fixture
def driver(tmp_path: Path, simulator: Simulator) -> Iterator[Ds4xxxStorageDriver]:
    made = make_driver(tmp_path)
    yield made
    made.close()


@pytest.fixture
def home(tmp_path: Path, simulator: Simulator) -> Path:
    """An ENCOMPASS_HOME whose default pool 'san' is on the simulator."""
    folder = tmp_path / "home"
    folder.mkdir()
    (folder / "encompass.toml").write_text(f"""\
[defaults]
pool = "san"
clone_mode = "cow"

[pools.san]
driver = "ds4xxx"
smcli = "{SMCLI}"
controllers = {json.dumps(CONTROLLERS)}
array = "1"
utility_initiator = "{UTILITY_INITIATOR}"
lun_offset = 1
poll_interval = 0.1
""")
    return folder
