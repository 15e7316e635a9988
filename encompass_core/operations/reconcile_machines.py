"""Machines found by the platforms compared with the machines recorded, by identity.

A machine's identity is its UUID, its serial number and its MAC addresses, strongest first; its
name and platform are only where it is. A found machine sharing an identity with exactly one
record is that record (``matched`` where it was, ``moved`` elsewhere); with two records, the
records conflict. A found machine sharing no identity with any record is ``new``, unless a
record of the same name on the same platform says it is another machine (``conflict``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..model import Image, Machine
from .reconcile import Entry, Finding

_LABEL = {"uuid": "UUID", "serial": "serial", "mac": "MAC"}


def identity(machine: Machine) -> list[tuple[str, str]]:
    """The machine's identity keys, strongest first: ``("uuid", ...)``, ``("serial", ...)``,
    ``("mac", ...)`` (lowercased, so spellings compare equal)."""
    keys = [("uuid", machine.uuid.lower())] if machine.uuid else []
    keys += [("serial", machine.serial.strip().lower())] if machine.serial and machine.serial.strip() else []
    return keys + [("mac", mac.lower()) for mac in machine.macs if mac]


def describe(key: tuple[str, str]) -> str:
    return f"{_LABEL[key[0]]} {key[1]}"


def compare(answers: Mapping[str, object], stored: Sequence[Machine], images: Sequence[Image],
            configured: set[str]) -> list[Entry]:
    """Entries for every machine of the platforms asked (``answers``: a list of machines or the
    reason the platform did not answer) and every record they concern."""
    by_name = {m.name: m for m in stored}
    index: dict[tuple[str, str], list[str]] = {}
    for machine in stored:
        for key in identity(machine):
            index.setdefault(key, []).append(machine.name)
    users = _volume_users(images)
    entries: list[Entry] = []
    seen: set[str] = set()  # records accounted for (matched, moved or in a conflict)
    found_for: dict[str, str] = {}  # record -> the found machine that matched it
    for platform, answer in answers.items():
        if isinstance(answer, str):
            kept = [m.name for m in stored if m.platform == platform]
            entries.append(Entry(Finding(
                "unreachable", "platform", platform, f"platform:{platform}", answer,
                f"{len(kept)} recorded machine(s) left as they were; nothing marked missing")))
            seen.update(kept)
            continue
        for found in answer:
            entries.append(_one(found, by_name, index, users, seen, found_for))
    asked = {p for p, a in answers.items() if not isinstance(a, str)}
    for machine in stored:
        if machine.name in seen:
            continue
        if machine.platform in asked:
            where = f"platform '{machine.platform}' has no machine with its identity or name"
        elif machine.platform not in configured and len(answers) == len(configured) and asked:
            where = f"platform '{machine.platform}' is no longer configured"
        else:
            continue  # its platform was not asked this time
        entries.append(_missing(machine, where))
    return entries


def _one(found: Machine, by_name: Mapping[str, Machine], index: Mapping[tuple[str, str], list[str]],
         users: Mapping[str, str], seen: set[str], found_for: dict[str, str]) -> Entry:
    source = f"platform:{found.platform}"
    hits: dict[str, tuple[str, str]] = {}
    for key in identity(found):
        for name in index.get(key, ()):
            hits.setdefault(name, key)
    if len(hits) > 1:
        seen.update(hits)
        claims = "; ".join(f"{describe(key)} is recorded for '{name}'" for name, key in hits.items())
        stale = [n for n in hits if n != found.name] or list(hits)
        return Entry(Finding("conflict", "machine", found.name, source,
                             f"two records claim this machine: {claims}",
                             f"remove the stale record (encompass machine forget {stale[0]}), "
                             "then: encompass discover --apply"))
    if hits:
        [(name, key)] = hits.items()
        if name in found_for:
            return Entry(Finding("conflict", "machine", found.name, source,
                                 f"{describe(key)} is recorded for '{name}', which machine "
                                 f"'{found_for[name]}' matched already: two machines share it",
                                 "give each machine its own UUID and MACs on its platform"))
        seen.add(name)
        found_for[name] = found.name
        record = by_name[name]
        return _known(found, record, key, by_name, users)
    record = by_name.get(found.name)
    if record is not None and record.name not in seen:
        if identity(record) and record.platform == found.platform:
            seen.add(record.name)
            return Entry(Finding(
                "conflict", "machine", found.name, source,
                f"the record of '{found.name}' has {describe(identity(record)[0])}, the platform's "
                f"'{found.name}' has {_shown_identity(found)}: another machine under the same name",
                f"if the recorded one is gone for good: encompass machine forget {found.name}; "
                "then: encompass discover --apply"))
        if not identity(record):
            seen.add(record.name)
            return _known(found, record, None, by_name, users)
    if record is not None:  # the name is taken by a record of another machine
        return Entry(Finding("conflict", "machine", found.name, source,
                             f"a machine '{found.name}' of platform '{record.platform}' is recorded "
                             f"already, with another identity ({_shown_identity(record)})",
                             f"rename one of them on its platform, or: encompass machine forget "
                             f"{found.name}; then: encompass discover --apply"))
    why = f"no record has its {_shown_identity(found)}" if identity(found) else \
        "no record has its name (it has no UUID, serial or MAC to match by)"
    running = _runs(found, users)
    if running:
        why += f"; it uses the volumes of image '{running}'"
    return Entry(Finding("new", "machine", found.name, source, why,
                         "recorded" + (f" (run encompass repair to settle '{running}')" if running else "")),
                 ("machine-new", found))


def _known(found: Machine, record: Machine, key: tuple[str, str] | None,
           by_name: Mapping[str, Machine], users: Mapping[str, str]) -> Entry:
    source = f"platform:{found.platform}"
    how = f"by {describe(key)}" if key else "by name (the record has no UUID, serial or MAC)"
    disagreement = _disagreement(found, record)
    if disagreement:
        return Entry(Finding("conflict", "machine", found.name, source,
                             f"matched {how}, but {disagreement}",
                             f"check it on its platform; if the record is stale: encompass machine "
                             f"forget {record.name}; then: encompass discover --apply"))
    running = _runs(found, users)
    conflict = _image_conflict(found, record, running)
    if conflict:
        return Entry(Finding("conflict", "machine", found.name, source, f"matched {how}; {conflict}",
                             f"see what runs there (encompass machine show {record.name}); "
                             "settle the claim with: encompass repair"))
    if (record.name, record.platform) == (found.name, found.platform):
        action = "facts refreshed" + ("; missing mark cleared" if record.missing else "")
        if record.image and record.image not in users.names:
            action += f"; claim on deleted image '{record.image}' released"
        return Entry(Finding("matched", "machine", found.name, source, f"matched {how}", action),
                     ("machine-refresh", found, record.name))
    taken = by_name.get(found.name)
    if taken is not None and taken.name != record.name:
        return Entry(Finding("conflict", "machine", found.name, source,
                             f"moved {how}: it was '{record.name}' on platform '{record.platform}', "
                             f"and the name '{found.name}' is recorded for another machine",
                             f"encompass machine forget {found.name}; then: encompass discover --apply"))
    change = []
    if found.name != record.name:
        change.append(f"'{record.name}' is now '{found.name}'")
    if found.platform != record.platform:
        change.append(f"now on platform {found.platform} (was {record.platform})")
    action = "record renamed" if found.name != record.name else "record updated"
    if record.image:
        action += f"; image '{record.image}' follows it"
    return Entry(Finding("moved", "machine", found.name, source,
                         f"moved: {how if key else 'its name'}, " + ", ".join(change), action),
                 ("machine-move", found, record.name))


def _missing(machine: Machine, where: str) -> Entry:
    claim = f"; it claims image '{machine.image}' (encompass repair settles the claim)" \
        if machine.image else ""
    if machine.missing:
        return Entry(Finding("missing", "machine", machine.name, f"platform:{machine.platform}",
                             where + claim, f"marked missing since {machine.missing} already"))
    return Entry(Finding("missing", "machine", machine.name, f"platform:{machine.platform}",
                         where + claim, "marked missing (the record is kept)"),
                 ("machine-missing", machine.name))


def _disagreement(found: Machine, record: Machine) -> str:
    """Facts of identity that contradict each other (matched by MAC, another UUID...)."""
    if found.uuid and record.uuid and found.uuid.lower() != record.uuid.lower():
        return f"its UUID is {found.uuid}, the record says {record.uuid}"
    if found.serial and record.serial and found.serial.strip().lower() != record.serial.strip().lower():
        return f"its serial is {found.serial}, the record says {record.serial}"
    return ""


def _image_conflict(found: Machine, record: Machine, running: str | None) -> str:
    """Whether what the machine uses contradicts the image its record says it runs."""
    if record.image and running and running != record.image:
        return f"it uses the volumes of image '{running}', the records say it runs '{record.image}'"
    if not record.image and running:
        return f"it uses the volumes of image '{running}', which the records do not place on it"
    return ""


def _runs(found: Machine, users: Mapping[str, str]) -> str | None:
    """The image whose volumes the machine's definition uses (by location), if any."""
    for disk in found.disks:
        if disk and disk in users:
            return users[disk]
    return None


def _volume_users(images: Sequence[Image]) -> _Users:
    """Volume location -> the clone it belongs to (masters never run: their volumes are read
    only through clones)."""
    return _Users({v.location: i.name for i in images if not i.is_master for v in i.volumes},
                  {i.name for i in images})


class _Users(dict):
    """Volume location -> the clone using it; ``names``: every image's name."""

    def __init__(self, users: dict[str, str], names: set[str]) -> None:
        super().__init__(users)
        self.names = names


def _shown_identity(machine: Machine) -> str:
    keys = identity(machine)
    return ", ".join(describe(k) for k in keys[:2]) if keys else "no identity"
