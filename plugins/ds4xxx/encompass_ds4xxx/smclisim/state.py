"""The simulated subsystem's state: one JSON file, locked for a whole SMcli run, written
atomically (temp file, fsync, rename).

Layout (``version`` 1)::

    subsystem: {name, wwn, password, controllers: {A: {address, online}, B: {...}}}
    iscsi: {target_name, portal, tgt_control}
    data_dir: where logical drives' sparse files live
    copy_rate: bytes per second a VolumeCopy advances (0: at once)
    arrays: {"1": {raid, capacity}}
    drives: {ssid: {label, kind (standard|flashcopy|repository), array, capacity, wwn,
                    preferred, owner, base, repository, file, mapping: {host, lun} | null}}
    hosts: {label: {type, tid, target, ports: {identifier: {label, interface}}}}
    copies: {target ssid: {source, status, done, priority, read_only, started, completed}}
    next_ssid, next_tid
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
from collections.abc import Iterator
from typing import Any

VERSION = 1


def new_state(name: str, controllers: list[str], arrays: dict[str, int], portal: str,
              tgt_control: int, data_dir: str, password: str | None, copy_rate: int) -> dict[str, Any]:
    """A subsystem with empty arrays, no logical drives and no hosts."""
    slug = "".join(c if c.isalnum() else "-" for c in name.lower())
    return {
        "version": VERSION,
        "subsystem": {
            "name": name,
            "wwn": "600a0b80" + secrets.token_hex(12),
            "password": password,
            "controllers": {slot: {"address": address, "online": True}
                            for slot, address in zip("AB", controllers, strict=False)},
        },
        "iscsi": {"target_name": f"iqn.1992-01.com.ibm:ds4xxx-sim.{slug}", "portal": portal,
                  "tgt_control": tgt_control},
        "data_dir": data_dir,
        "copy_rate": copy_rate,
        "arrays": {number: {"raid": "5", "capacity": size} for number, size in arrays.items()},
        "drives": {},
        "hosts": {},
        "copies": {},
        "next_ssid": 0,
        "next_tid": 1,
    }


@contextlib.contextmanager
def locked(path: str) -> Iterator[None]:
    """Hold the state's lock (its ``.lock`` file) for the block."""
    with open(path + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def load(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as file:
        state = json.load(file)
    if state.get("version") != VERSION:
        raise ValueError(f"{path}: state version {state.get('version')} is not {VERSION}")
    return state


def save(path: str, state: dict[str, Any]) -> None:
    partial = f"{path}.tmp"
    with open(partial, "w", encoding="utf-8") as file:
        json.dump(state, file, indent=1, sort_keys=True)
        file.flush()
        os.fsync(file.fileno())
    os.replace(partial, path)


def drive_by_label(state: dict[str, Any], label: str) -> tuple[str, dict[str, Any]] | None:
    """``(ssid, drive)`` of the logical drive called ``label`` (labels are unique)."""
    for ssid, drive in state["drives"].items():
        if drive["label"] == label:
            return ssid, drive
    return None


def free_capacity(state: dict[str, Any], array: str) -> int:
    """What is left in an array: its capacity less its standard and repository drives'
    (a FlashCopy logical drive takes no capacity of its own)."""
    used = sum(d["capacity"] for d in state["drives"].values()
               if d["array"] == array and d["kind"] != "flashcopy")
    return state["arrays"][array]["capacity"] - used
