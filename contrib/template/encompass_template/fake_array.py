"""A fake storage array to develop the driver against, before (and beside) the real one.

It keeps its logical units (LUNs) as raw files in one directory, and what it knows of them
(owner image, size, read-only, which initiators they are mapped to) in ``array.json`` there,
written atomically. Replace it with your array's client library: the driver calls only these
methods, each the kind of request a real array answers. A directory that does not exist is an
array that does not answer (:class:`ArrayUnreachable`).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

STATE = "array.json"


class ArrayUnreachable(Exception):
    """The array does not answer."""


class NoSuchLun(Exception):
    """The array has no LUN of that name."""


class FakeArray:
    """The client of one fake array at ``address`` (a directory)."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.root = Path(address)

    @classmethod
    def create(cls, address: str) -> FakeArray:
        """Make a new, empty array (what a lab does once)."""
        (Path(address) / "luns").mkdir(parents=True, exist_ok=True)
        array = cls(address)
        array._save({})
        return array

    # -- state ---------------------------------------------------------------------------------
    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            return json.loads((self.root / STATE).read_text())
        except FileNotFoundError as exc:
            raise ArrayUnreachable(f"no array answers at {self.address}") from exc

    def _save(self, luns: dict[str, dict[str, Any]]) -> None:
        fd, temp = tempfile.mkstemp(dir=self.root, prefix=".array-")
        with os.fdopen(fd, "w") as out:
            json.dump(luns, out, indent=1, sort_keys=True)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, self.root / STATE)

    def _lun(self, luns: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
        if name not in luns:
            raise NoSuchLun(name)
        return luns[name]

    # -- requests ------------------------------------------------------------------------------
    def luns(self) -> dict[str, dict[str, Any]]:
        """Every LUN: ``{name: {"image", "index", "size", "readonly", "mapped"}}``."""
        return self._load()

    def create_lun(self, name: str, source: Path, image: str, index: int, readonly: bool) -> dict:
        """A new LUN holding the bytes of ``source`` (a raw file on this server)."""
        luns = self._load()
        if name in luns:
            raise FileExistsError(name)
        target = self.device(name)
        try:
            shutil.copyfile(source, target)
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        luns[name] = {"image": image, "index": index, "size": target.stat().st_size,
                      "readonly": readonly, "mapped": []}
        self._save(luns)
        return luns[name]

    def copy_lun(self, source: str, name: str, image: str, index: int) -> dict:
        """A full, writable copy of LUN ``source`` (the array's own copy service)."""
        self._lun(self._load(), source)
        return self.create_lun(name, self.device(source), image, index, readonly=False)

    def delete_lun(self, name: str) -> None:
        luns = self._load()
        self._lun(luns, name)
        del luns[name]
        self._save(luns)
        self.device(name).unlink(missing_ok=True)

    def map_lun(self, name: str, initiator: str) -> None:
        """Let the host with ``initiator`` see the LUN."""
        luns = self._load()
        mapped = self._lun(luns, name)["mapped"]
        if initiator not in mapped:
            mapped.append(initiator)
            self._save(luns)

    def unmap_lun(self, name: str, initiator: str) -> None:
        luns = self._load()
        lun = self._lun(luns, name)
        if initiator in lun["mapped"]:
            lun["mapped"].remove(initiator)
            self._save(luns)

    def device(self, name: str) -> Path:
        """Where this server sees the LUN once mapped to it (a block device on a real SAN)."""
        return self.root / "luns" / f"{name}.raw"

    def portal(self) -> str:
        """The address machines reach the array's LUNs at."""
        return f"iscsi://127.0.0.1:3260/iqn.2024-01.example.fake-array:{self.root.name}"
