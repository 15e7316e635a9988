"""Volumes found in the pools compared with the volumes the images record.

A found volume is the recorded one at the same location (``matched``), or the recorded one with
the same world-wide name elsewhere (``moved``). Failing both, a recorded volume missing from its
pool and a found volume nobody records are paired when they alone share format, size and
backing (``moved``, said to be a guess). What is left is ``new`` (``--apply`` attaches it to the
image it belongs to, or adopts it as a master) or ``missing`` (marked, never forgotten). A
volume whose backing is not what the lineage says is a ``conflict``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import attrs

from ..contracts import DiscoveredVolume
from ..errors import InvalidInput
from ..model import Image, Volume, validate_name
from .reconcile import Entry, Finding


@attrs.frozen
class _Kept:
    """A volume an image keeps besides its current ones: a master's earlier version, what a
    clone's last rebase replaced (for ``--rollback``), or one an operation is removing. Matched
    like any other, never changed."""

    label: str  # "version 1", "kept for rebase --rollback"
    advice: str  # how the administrator lets it go
    gone_is_fine: bool = False  # not reported missing


def compare(answers: Mapping[str, object], images: Sequence[Image]) -> list[Entry]:
    """Entries for every volume of the pools asked (``answers``: a list of discovered volumes
    or the reason the pool did not answer) and every recorded volume in them."""
    by_name = {i.name: i for i in images}
    entries: list[Entry] = []
    for pool, answer in answers.items():
        recorded = [(i, v) for i in images for v in i.volumes if v.pool == pool]
        kept = [(i, v, k) for i, v, k in _kept_volumes(images) if v.pool == pool]
        if isinstance(answer, str):
            entries.append(Entry(Finding("unreachable", "pool", pool, f"pool:{pool}", answer,
                                         f"{len(recorded) + len(kept)} recorded volume(s) left as "
                                         "they were; nothing marked missing")))
            continue
        found = _pool_kept(f"pool:{pool}", answer, kept, entries)
        entries += _pool(pool, found, recorded, by_name)
    return entries


def _kept_volumes(images: Sequence[Image]) -> list[tuple[Image, Volume, _Kept]]:
    """Every kept volume, with the image as it was when the volume was current."""
    out = []
    for image in images:
        for version in image.versions:
            if version.number == image.version:
                continue  # the current version: its volumes are the image's own
            then = image.at_version(version.number)
            out += [(then, v, _Kept(f"version {version.number}",
                                    f"encompass master retire {image.name} --version {version.number}"))
                    for v in version.volumes]
        if image.previous is not None:
            then = attrs.evolve(image, volumes=image.previous.volumes,
                                master_version=image.previous.master_version)
            current = {(v.pool, v.location) for v in image.volumes}  # carried data volumes
            out += [(then, v, _Kept("kept for rebase --rollback",
                                    f"encompass rebase {image.name} --discard-old"))
                    for v in image.previous.volumes if (v.pool, v.location) not in current]
        # Volumes an operation is removing (its record already let them go): owned until gone,
        # and gone is what is meant.
        out += [(image, v, _Kept("being removed", "encompass repair, if the operation removing it died",
                                 gone_is_fine=True)) for v in image.removing]
    return out


def _pool_kept(source: str, found: Sequence[DiscoveredVolume],
               kept: list[tuple[Image, Volume, _Kept]], entries: list[Entry]) -> list[DiscoveredVolume]:
    """Findings for the kept volumes of one pool (added to ``entries``); the found volumes
    that are none of them."""
    at = {_where(v.location): (i, v, k) for i, v, k in kept}
    by_wwn = {v.wwn.lower(): (i, v, k) for i, v, k in kept if v.wwn}
    rest, seen = [], set()
    for item in found:
        hit = at.get(_where(item.volume.location))
        if hit is None and item.volume.wwn:
            hit = by_wwn.get(item.volume.wwn.lower())
        if hit is None:
            rest.append(item)
            continue
        image, volume, why = hit
        seen.add(id(volume))
        name = f"{image.name} ({why.label})/volume {volume.index}"
        if _where(item.volume.location) == _where(volume.location):
            entries.append(Entry(Finding("matched", "volume", name, source,
                                         f"matched by location; {why.label}", "nothing to change")))
        else:
            entries.append(Entry(Finding("moved", "volume", name, source,
                                         f"moved (by WWN {item.volume.wwn}): it was at "
                                         f"{volume.location}, now at {item.volume.location}",
                                         f"not followed, as {why.label} is never changed: put it "
                                         f"back, or let it go ({why.advice})")))
    for image, volume, why in kept:
        if id(volume) not in seen and not why.gone_is_fine:
            entries.append(Entry(Finding(
                "missing", "volume", f"{image.name} ({why.label})/volume {volume.index}", source,
                f"recorded at {volume.location}; the pool has nothing there",
                f"left as recorded ({why.label}); if it is gone for good: {why.advice}")))
    return rest


def _pool(pool: str, found: Sequence[DiscoveredVolume], recorded: list[tuple[Image, Volume]],
          by_name: Mapping[str, Image]) -> list[Entry]:
    source = f"pool:{pool}"
    at = {_where(v.location): (i, v) for i, v in recorded}
    by_wwn = {v.wwn.lower(): (i, v) for i, v in recorded if v.wwn}
    entries: list[Entry] = []
    unclaimed: list[DiscoveredVolume] = []
    accounted: set[tuple[str, int]] = set()
    for item in found:
        hit = at.get(_where(item.volume.location))
        how = "by location"
        if hit is None and item.volume.wwn:
            hit, how = by_wwn.get(item.volume.wwn.lower()), f"by WWN {item.volume.wwn}"
        if hit is None:
            unclaimed.append(item)
            continue
        image, volume = hit
        accounted.add((image.name, volume.index))
        entries.append(_known(source, item, image, volume, how, by_name))
    lost = [(i, v) for i, v in recorded if (i.name, v.index) not in accounted]
    for image, volume, item in _pairs(lost, unclaimed, by_name):
        lost.remove((image, volume))
        unclaimed.remove(item)
        entries.append(_known(source, item, image, volume,
                              "probably: the only missing and new volumes of the same format, "
                              "size and backing", by_name))
    entries += [_new(source, item, by_name, found) for item in unclaimed]
    entries += [_missing(source, image, volume) for image, volume in lost]
    return entries


def _known(source: str, item: DiscoveredVolume, image: Image, volume: Volume, how: str,
           by_name: Mapping[str, Image]) -> Entry:
    name = f"{image.name}/volume {volume.index}"
    expected = _expected_backing(volume, by_name, image)
    candidates = _backing_candidates(volume, by_name, image)
    if (_where(item.backing) != _where(expected)
            and _where(item.backing) not in {_where(c) for c in candidates or ()}):
        said = f"reads through {item.backing}" if item.backing else "reads through nothing"
        lineage = f"the lineage says {expected}" if expected else "the lineage says it is independent"
        return Entry(Finding("conflict", "volume", name, source,
                             f"matched {how}, but it {said} and {lineage}",
                             f"check the volume's chain (qemu-img info --backing-chain "
                             f"{item.volume.location}); if the clone is lost: encompass image "
                             f"delete {image.name}"))
    if _where(item.volume.location) == _where(volume.location):
        action = "nothing to change" + ("; missing mark cleared" if volume.missing else "")
        plan = ("volume-seen", image.name, volume.index) if volume.missing else None
        return Entry(Finding("matched", "volume", name, source, f"matched {how}", action), plan)
    return Entry(Finding("moved", "volume", name, source,
                         f"moved ({how}): it was at {volume.location}, now at "
                         f"{item.volume.location}", "location updated"),
                 ("volume-move", image.name, volume.index, item.volume))


def _new(source: str, item: DiscoveredVolume, by_name: Mapping[str, Image],
         found: Sequence[DiscoveredVolume]) -> Entry:
    location = item.volume.location
    owner = by_name.get(item.image or "")
    if owner is not None:
        if any(v.index == item.volume.index for v in owner.volumes):
            return Entry(Finding("conflict", "volume", location, source,
                                 f"its place says it is volume {item.volume.index} of image "
                                 f"'{owner.name}', which records that volume elsewhere",
                                 f"see encompass image show {owner.name}; remove the copy you do "
                                 "not want from the pool by hand"))
        return Entry(Finding("new", "volume", location, source,
                             f"unknown; its place in the pool says it is volume {item.volume.index} "
                             f"of image '{owner.name}'", f"attached to image '{owner.name}'"),
                     ("volume-attach", owner.name, item))
    if item.backing:
        return Entry(Finding("new", "volume", location, source,
                             f"unknown; a copy-on-write volume reading through {item.backing}",
                             "left alone: a master must be independent (copy it out with "
                             "qemu-img convert and import it: encompass master import)"))
    name = _master_name(item, by_name, found)
    if name is None:
        return Entry(Finding("new", "volume", location, source,
                             f"unknown; its place ('{item.image}') is no free image name, or holds "
                             "several volumes",
                             "left alone: import it under a name of your own (encompass master "
                             f"import NAME {location})"))
    return Entry(Finding("new", "volume", location, source,
                         "unknown, and no image of that name exists", f"adopted as master '{name}'"),
                 ("volume-adopt", name, item))


def _missing(source: str, image: Image, volume: Volume) -> Entry:
    name = f"{image.name}/volume {volume.index}"
    why = f"recorded at {volume.location}; the pool has nothing there (by location, WWN or guess)"
    if volume.missing:
        return Entry(Finding("missing", "volume", name, source, why,
                             f"marked missing since {volume.missing} already"))
    return Entry(Finding("missing", "volume", name, source, why,
                         "marked missing on the image (the record is kept)"),
                 ("volume-missing", image.name, volume.index))


def _pairs(lost: list[tuple[Image, Volume]], unclaimed: list[DiscoveredVolume],
           by_name: Mapping[str, Image]) -> list[tuple[Image, Volume, DiscoveredVolume]]:
    """Missing and new volumes that pair one to one by format, size and backing."""
    def key(fmt: str, size: int, backing: str | None) -> tuple:
        return fmt, size, _where(backing)

    lost_keys = [key(v.format, v.size, _expected_backing(v, by_name, i)) for i, v in lost]
    new_keys = [key(d.volume.format, d.volume.size, d.backing) for d in unclaimed]
    pairs = []
    for (image, volume), lost_key in zip(lost, lost_keys, strict=True):
        if not volume.size or lost_keys.count(lost_key) != 1 or new_keys.count(lost_key) != 1:
            continue
        pairs.append((image, volume, unclaimed[new_keys.index(lost_key)]))
    return pairs


def _expected_backing(volume: Volume, by_name: Mapping[str, Image],
                      image: Image | None = None) -> str | None:
    """The location of what the lineage says the volume reads through (None: independent): the
    backing image's volume at that index, of the master version ``image`` derives from."""
    candidates = _backing_candidates(volume, by_name, image)
    if candidates is None:
        return None
    return candidates[0] if candidates else (
        f"volume {volume.backing[1]} of '{volume.backing[0]}' (not recorded)")


def _backing_candidates(volume: Volume, by_name: Mapping[str, Image],
                        image: Image | None = None) -> list[str] | None:
    """Every location the backing image records at the volume's backing index (the version
    ``image`` derives from first, then the image's other versions and kept volumes); None
    when the volume reads through nothing."""
    if not volume.backing:
        return None
    parent = by_name.get(volume.backing[0])
    if parent is None:
        return []
    index = volume.backing[1]
    first = parent.at_version(image.master_version) if image is not None and parent.is_master else parent
    others = [parent, *(parent.at_version(v.number) for v in parent.versions)]
    if parent.previous is not None:
        others.append(attrs.evolve(parent, volumes=parent.previous.volumes))
    return list(dict.fromkeys(v.location for source in (first, *others) for v in source.volumes
                              if v.index == index))


def _master_name(item: DiscoveredVolume, by_name: Mapping[str, Image],
                 found: Sequence[DiscoveredVolume]) -> str | None:
    """The name a found volume is adopted under: its place's name, when that is a valid image
    name, not taken, and the volume is its place's only one."""
    try:
        name = validate_name(item.image or "")
    except InvalidInput:
        return None
    siblings = [d for d in found if d.image == item.image]
    if name in by_name or len(siblings) != 1:
        return None
    return name


def _where(location: str | None) -> str | None:
    """A location compared as a path when it is one (``a//b`` and ``a/b`` are one file)."""
    if location and location.startswith("/"):
        return os.path.normpath(location)
    return location
