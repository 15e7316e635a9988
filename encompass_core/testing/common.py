"""What storage and platform drivers share in the suite: the peer-down tests, the record checks."""

from __future__ import annotations

from typing import Any

import pytest

from ..errors import DriverError
from ..settings import Setting


def owner_name(driver: Any) -> str:
    """The pool's or platform's name a driver serves (what its messages must name)."""
    return getattr(driver, "pool", None) or driver.platform


def check_record(record: Any, driver: Any) -> None:
    """The record registers a named factory and declares its settings as :class:`Setting`."""
    assert record.name and callable(record.factory)
    assert all(isinstance(setting, Setting) for setting in record.settings), \
        "declare settings as encompass_core.settings.Setting records"
    names = [setting.name for setting in record.settings]
    assert len(names) == len(set(names)), f"a setting is declared twice: {names}"
    assert isinstance(owner_name(driver), str) and owner_name(driver)


def check_one_line(error: BaseException, driver: Any) -> None:
    """An error a user reads: one line that names the pool or platform."""
    message = str(error)
    assert message and "\n" not in message, f"an error is one line, got: {message!r}"
    assert "Traceback" not in message
    assert owner_name(driver) in message, f"the error should name '{owner_name(driver)}': {message}"


class PeerDownSuite:
    """For a driver that talks to a peer (an array, a daemon, a server): when the peer cannot be
    reached, the driver says so in one line naming its pool or platform, as a
    :class:`~encompass_core.errors.DriverError`.

    Fixture to provide: ``down_driver``, a driver configured for a peer that does not answer
    (a closed port, a missing socket). A driver without a peer does not mix this in.
    """

    def test_an_unreachable_peer_is_one_clear_line(self, down_driver):
        with pytest.raises(DriverError) as refused:
            down_driver.discover()
        check_one_line(refused.value, down_driver)
