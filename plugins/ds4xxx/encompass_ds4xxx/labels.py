"""How the pool names logical drives and hosts on the subsystem.

A volume is the logical drive ``IMAGE_INDEX``; a master's (read-only) ``IMAGE_INDEX_RO``; one
being written (an import, a VolumeCopy in progress) ``IMAGE_INDEX_P`` until it is whole, then
renamed. Image names hold lowercase letters, digits and hyphens, so ``_`` and the uppercase
suffixes cannot clash with them. A FlashCopy's repository is ``IMAGE_INDEX-R``. DS4000 labels
hold 30 characters at most.
"""

from __future__ import annotations

import hashlib
import re

import attrs

from encompass_core.errors import InvalidInput

MAX_LABEL = 30
_VOLUME = re.compile(r"^(?P<image>[a-z0-9][a-z0-9-]*)_(?P<index>\d+)(?:_(?P<flag>RO|P))?$")
_NOT_LABEL = re.compile(r"[^A-Za-z0-9_#-]")
_NOT_IQN = re.compile(r"[^a-z0-9.-]+")


@attrs.frozen
class VolumeLabel:
    """A logical drive label the pool made, read back."""

    image: str
    index: int
    flag: str | None  # "RO" (a master's), "P" (half-made) or None

    @property
    def readonly(self) -> bool:
        return self.flag == "RO"


def volume_label(pool: str, image: str, index: int) -> str:
    """``IMAGE_INDEX``, checked to fit with every suffix the pool adds."""
    label = f"{image}_{index}"
    if len(label) + 3 > MAX_LABEL:
        longest = MAX_LABEL - 4 - len(str(index))
        raise InvalidInput(
            f"pool '{pool}' names logical drives IMAGE_INDEX (30 characters at most with its "
            f"suffixes): image name '{image}' is {len(image)} characters long, {longest} at most "
            "here; choose a shorter name"
        )
    return label


def master(label: str) -> str:
    return f"{label}_RO"


def partial(label: str) -> str:
    return f"{label}_P"


def repository(label: str) -> str:
    return f"{label}-R"


def parse(label: str) -> VolumeLabel | None:
    """The image and index a label names, or None for a logical drive the pool did not make."""
    match = _VOLUME.match(label)
    if match is None:
        return None
    return VolumeLabel(match.group("image"), int(match.group("index")), match.group("flag"))


def host_label(name: str) -> str:
    """A machine's host label: its name when it fits, else a prefix and a digest."""
    clean = _NOT_LABEL.sub("-", name)
    if len(clean) <= MAX_LABEL:
        return clean
    return f"{clean[:21]}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"


def port_label(host: str, identifier: str) -> str:
    """A host port's label: unique per identifier, readable by its host's name."""
    return f"{host[:21]}-{hashlib.sha1(identifier.encode()).hexdigest()[:8]}"


def iqn_part(text: str) -> str:
    """Text made fit for an iSCSI name (lowercase letters, digits, dots and dashes)."""
    return _NOT_IQN.sub("-", text.lower()).strip("-") or "x"
