"""Fixtures: one vcsim for the session (built from Debian's packages), drivers configured for it.

The password reaches the drivers as a real user's would: through ``password_env``
(``$VCSIM_PASSWORD``), never in a file or a setting.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("pyVmomi", reason="pyvmomi is not installed (./setup_plugins esx --test)")

from encompass_esx.platform import EsxPlatformDriver  # noqa: E402
from encompass_esx.storage import EsxStorageDriver  # noqa: E402
from vcsim_testing import (  # noqa: E402
    PASSWORD,
    Vcsim,
    VcsimUnavailable,
    platform_driver,
    pool_driver,
    start_vcsim,
    vcsim_binary,
)


@pytest.fixture(scope="session")
def vcsim_program() -> Path:
    try:
        return vcsim_binary()
    except VcsimUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def vcsim(vcsim_program: Path) -> Iterator[Vcsim]:
    """A vCenter simulator for the whole session: datacenter DC0, cluster DC0_C0 of three hosts,
    standalone host DC0_H0, datastores LocalDS_0 and LocalDS_1, four VMs to begin with."""
    os.environ["VCSIM_PASSWORD"] = PASSWORD
    folder = Path(tempfile.mkdtemp(prefix="enc-vcsim-"))
    try:
        with start_vcsim(folder / "vcsim") as server:
            yield server
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def platform(vcsim: Vcsim, tmp_path: Path) -> Iterator[EsxPlatformDriver]:
    driver = platform_driver(tmp_path, vcsim.settings())
    yield driver
    driver.close()


@pytest.fixture
def pool(vcsim: Vcsim, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[EsxStorageDriver]:
    """A pool in a folder of its own on LocalDS_0 (a fresh, empty pool for each test)."""
    folder = "t-" + request.node.name[:40].replace("[", "-").replace("]", "")
    driver = pool_driver(tmp_path, vcsim.settings(datastore="LocalDS_0", folder=folder))
    yield driver
    driver.close()
