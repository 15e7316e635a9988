"""The metadata repository, behind one protocol (:mod:`.protocol`) and two backends.

``[store] backend`` in ``encompass.toml`` picks the backend: ``tinydb`` (the default: files in
``ENCOMPASS_HOME``, nothing to set up, :mod:`.tinydb`) or ``postgresql`` (a database server
shared by several utility servers, :mod:`.postgresql`). This package is the only part of
Encompass that knows a backend; operations talk to :class:`~.protocol.Store` and
:class:`~.protocol.Transaction` only.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError
from .owners import current_owner, host_identity, owner_alive, process_start_time
from .tinydb import Store, Transaction

if TYPE_CHECKING:
    from ..config import Config
    from . import protocol

__all__ = ["BACKENDS", "Store", "Transaction", "current_owner", "host_identity", "open_store", "owner_alive",
           "process_start_time"]

#: The backends ``[store] backend`` may name.
BACKENDS = ("tinydb", "postgresql")

#: The TinyDB backend's main file in ``ENCOMPASS_HOME``.
METADATA_NAME = "metadata.json"


def open_store(home: Path, config: Config) -> protocol.Store:
    """The store ``config`` (its ``[store]`` table) asks for, for the repository in ``home``."""
    settings = config.store
    backend = settings.get("backend", "tinydb")
    if backend == "tinydb":
        return Store(Path(home) / METADATA_NAME)
    if backend == "postgresql":
        try:
            from .postgresql import open_store as open_postgresql_store
        except ImportError as exc:  # psycopg missing, or a build without the backend
            raise ConfigError(f"{config.path}: [store] backend = \"postgresql\" cannot be used: {exc}; "
                              "install psycopg (pip install 'psycopg[binary]')") from None
        return open_postgresql_store(Path(home), config.store)
    raise ConfigError(f"{config.path}: [store] backend must be one of {', '.join(BACKENDS)}, "
                      f"not {backend!r}")
