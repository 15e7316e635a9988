"""Fixtures: a lab of AMT PCs (the core's WS-Man responder on 127.0.0.1), drivers configured for it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from amt_testing import PASSWORD, PASSWORD_VAR, USER, platform_driver, settings
from encompass_amt.lab.responder import AmtLab, AmtPc


@pytest.fixture(autouse=True)
def amt_password(monkeypatch: pytest.MonkeyPatch) -> str:
    """The PCs' password, where the platform's password_env says."""
    monkeypatch.setenv(PASSWORD_VAR, PASSWORD)
    return PASSWORD


@pytest.fixture
def pcs() -> list[AmtPc]:
    """Three power-only PCs, off."""
    return [AmtPc(f"pc{number}") for number in (1, 2, 3)]


@pytest.fixture
def amt_lab(pcs: list[AmtPc]) -> Iterator[AmtLab]:
    with AmtLab(pcs, USER, PASSWORD) as lab:
        yield lab


@pytest.fixture
def platform(amt_lab: AmtLab, tmp_path: Path):
    driver = platform_driver(tmp_path, settings(amt_lab))
    yield driver
    driver.shutdown()
