"""Hardware and software profiles from ``--hw key=value`` / ``--sw key=value`` options."""

from __future__ import annotations

import re
from collections.abc import Iterable

import attrs

from ..errors import InvalidInput
from ..model import HardwareProfile, SoftwareProfile

_SIZE = re.compile(r"^(\d+)\s*([KMGT]?)i?B?$", re.IGNORECASE)
_MIB = {"": 1, "K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}


def parse_pairs(pairs: Iterable[str], option: str) -> dict[str, str]:
    """``["k=v", ...]`` into a dict; a pair without ``=`` is an error naming the option."""
    result = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"{option} {pair!r}: expected KEY=VALUE, e.g. {option} memory=2G")
        result[key.strip().replace("-", "_")] = value.strip()
    return result


def memory_mib(text: str) -> int:
    """``2048``, ``2048M``, ``2G``, ``2GiB`` → MiB."""
    match = _SIZE.match(text.strip())
    if not match:
        raise InvalidInput(f"memory {text!r}: give MiB or a size like 512M or 2G")
    return max(1, int(int(match.group(1)) * _MIB[match.group(2).upper()]))


def hardware(pairs: Iterable[str], base: HardwareProfile | None = None) -> HardwareProfile:
    """A hardware profile from ``--hw`` pairs; unknown keys are kept in ``extra``."""
    profile = base or HardwareProfile()
    changes: dict = {}
    extra = dict(profile.extra)
    for key, value in parse_pairs(pairs, "--hw").items():
        if key in ("memory", "memory_mib", "mem"):
            changes["memory_mib"] = memory_mib(value)
        elif key in ("cpus", "vcpus", "cpu"):
            if not value.isdigit() or int(value) < 1:
                raise InvalidInput(f"--hw cpus={value}: give a whole number of CPUs, 1 or more")
            changes["cpus"] = int(value)
        elif key == "arch":
            changes["arch"] = value
        elif key == "firmware":
            if value not in ("bios", "uefi"):
                raise InvalidInput(f"--hw firmware={value}: use bios or uefi")
            changes["firmware"] = value
        elif key == "platforms":
            changes["platforms"] = tuple(v.strip() for v in value.split(",") if v.strip())
        else:
            extra[key] = value
    return attrs.evolve(profile, extra=extra, **changes)


def software(pairs: Iterable[str], base: SoftwareProfile | None = None) -> SoftwareProfile:
    """A software profile from ``--sw`` pairs; unknown keys are kept in ``extra``."""
    profile = base or SoftwareProfile()
    changes: dict = {}
    extra = dict(profile.extra)
    for key, value in parse_pairs(pairs, "--sw").items():
        if key in ("os", "version", "description"):
            changes[key] = value
        else:
            extra[key] = value
    return attrs.evolve(profile, extra=extra, **changes)
