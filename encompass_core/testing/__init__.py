"""The driver contract's conformance suite: the tests a storage or platform driver must pass.

The core ships the tests that give each method of :mod:`encompass_core.contracts` its meaning
(as fsspec's abstract tests and SQLAlchemy's dialect suite do). A driver's own tests subclass
them and provide fixtures that build the driver against its real peer; every test of the suite
then runs against it. A driver that passes them is a driver. The suites need pytest (the
core's ``test`` extra: ``pip install 'encompass-core[test]'``) and are imported on first use; the
lab helpers beside them (:mod:`.lab`, :mod:`.tgt`, :mod:`.demo`) do not need it.

Storage drivers (:class:`StorageDriverSuite`) provide ``driver`` (a driver for a fresh, empty
pool) and ``record`` (the :class:`~encompass_core.records.StorageDriverRecord` the plugin
registers); ``source_file`` (a small raw ext4 image, :func:`make_source_image`) and ``master``
(that image imported) have defaults a driver may override. Platform drivers
(:class:`PlatformDriverSuite`) provide ``driver``, ``record``, ``image`` (an image whose volumes
the platform can start) and ``attachments`` (how its machines see them); ``machine`` defaults
to a machine the driver creates. A driver whose peer can be unreachable mixes in
:class:`PeerDownSuite` and provides ``down_driver``::

    import pytest
    from encompass_core.testing import PeerDownSuite, StorageDriverSuite

    class TestAcmeConformance(StorageDriverSuite, PeerDownSuite):
        @pytest.fixture
        def driver(self, acme_array, tmp_path):
            yield AcmeDriver(Section("acme", "acme", {"array": acme_array.address}), config)

        @pytest.fixture
        def record(self):
            return next(plugin.encompass_storage_drivers())

        @pytest.fixture
        def down_driver(self, tmp_path):
            return AcmeDriver(Section("acme", "acme", {"array": "127.0.0.1:1"}), config)

The suite skips nothing: what a driver does not declare in its capabilities is checked to be
refused (:class:`~encompass_core.errors.NotSupported`), and what it declares is checked to work.
"""

from __future__ import annotations

import importlib
from typing import Any

try:
    import pytest
except ImportError:  # the lab and tgt helpers serve `encompass demo --physical` without pytest
    pytest = None
else:
    # The suite's asserts are rewritten like a test module's, so a failure shows the values.
    pytest.register_assert_rewrite("encompass_core.testing.common", "encompass_core.testing.platform",
                                   "encompass_core.testing.storage")

#: Where each public name lives; imported on first use (the suites need pytest).
_PUBLIC = {"PeerDownSuite": "common", "PlatformDriverSuite": "platform", "StorageDriverSuite": "storage",
           "SOURCE_FILES": "storage", "make_source_image": "storage"}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
