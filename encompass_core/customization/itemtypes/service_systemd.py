"""The links ``systemctl enable``, ``disable`` and ``mask`` would make or remove, found offline
from the units' ``[Install]`` sections (see :mod:`.service`)."""

from __future__ import annotations

import posixpath

from ...errors import InvalidInput, NotFound
from .service_plan import LinkPlan

SYSTEMD_ETC = "/etc/systemd/system"
# Where `systemctl --root` looks for unit files, in its order (/run is empty offline).
UNIT_DIRS = (SYSTEMD_ETC, "/usr/local/lib/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system")
UNIT_SUFFIXES = (".service", ".socket", ".target", ".timer", ".path", ".mount", ".automount",
                 ".swap", ".slice", ".scope", ".device")
DEPENDENCY_DIRS = {"WantedBy": ".wants", "RequiredBy": ".requires", "UpheldBy": ".upholds"}


def _unit_name(name: str) -> str:
    return name if name.endswith(UNIT_SUFFIXES) else name + ".service"


def _template_of(unit: str) -> str | None:
    """``getty@tty1.service`` -> ``getty@.service``; None for a unit that is no instance."""
    prefix, at, rest = unit.partition("@")
    if not at or rest.startswith("."):
        return None
    return f"{prefix}@{rest[rest.rindex('.'):]}"


def _install_section(text: str) -> dict[str, list[str]]:
    section: dict[str, list[str]] = {}
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            current = line
            continue
        if current == "[Install]" and "=" in line:
            key, _, value = line.partition("=")
            words = value.split()
            section.setdefault(key.strip(), []).extend(words)
            if not words:  # an empty assignment resets the list
                section[key.strip()] = []
    return section


def _find_unit(plan: LinkPlan, unit: str) -> tuple[str, dict[str, list[str]]] | None:
    """The path of the unit file (a template's for an instance) and its [Install] section."""
    template = _template_of(unit)
    for name in (unit, template) if template else (unit,):
        for directory in UNIT_DIRS:
            path = plan.at(f"{directory}/{name}")
            found = plan.current(path)
            if found is None or (found[0] == "symlink" and found[1] == "/dev/null"):
                continue
            if found[0] == "dir":
                continue
            try:
                text = plan.fs.read(path).decode("utf-8", errors="replace")
            except NotFound:
                continue  # a dangling link
            return path, _install_section(text)
    return None


def _guest_path(plan: LinkPlan, path: str) -> str:
    """A path in the volume as the guest sees it (without the item's root)."""
    root = plan.item.path.rstrip("/")
    return path[len(root):] if root and path.startswith(root + "/") else path


def plan_systemd(plan: LinkPlan, name: str, state: str, seen: set[str]) -> None:
    unit = _unit_name(name)
    if unit in seen:
        return
    seen.add(unit)
    etc = plan.at(SYSTEMD_ETC)
    mask_path = f"{etc}/{unit}"
    found = _find_unit(plan, unit)
    masked = plan.current(mask_path) == ("symlink", "/dev/null")
    if found is None and not masked:
        raise NotFound(f"item '{plan.item.key}': no systemd unit {unit} under {plan.item.path} "
                       f"({', '.join(UNIT_DIRS)}); check the name")
    if state == "mask":
        plan.link(mask_path, "/dev/null")
        return
    if masked:
        plan.link(mask_path, None)  # on or off: unmasked as `systemctl unmask` would
    if found is None:
        return
    path, install = found
    target = _guest_path(plan, path)
    unit_file = posixpath.basename(path)
    instance = unit
    if unit == unit_file and _template_of(unit) is None and "@." in unit:
        default = (install.get("DefaultInstance") or [""])[-1]
        instance = unit.replace("@.", f"@{default}.") if default else ""
    aliases = install.get("Alias", [])
    if state == "on":
        wanted = [(key, t) for key in DEPENDENCY_DIRS for t in install.get(key, [])]
        if not (wanted or aliases or install.get("Also")):
            raise InvalidInput(f"item '{plan.item.key}': unit {unit} has no [Install] section: it "
                               "cannot be enabled (it starts when another unit needs it)")
        if wanted and not instance:
            raise InvalidInput(f"item '{plan.item.key}': {unit} is a template without "
                               "DefaultInstance; name an instance, e.g. getty@tty1")
        for key, dependent in wanted:
            plan.link(f"{etc}/{dependent}{DEPENDENCY_DIRS[key]}/{instance}", target)
        for alias in aliases:
            if posixpath.join(etc, alias) != path:
                plan.link(f"{etc}/{alias}", target)
    else:
        names = {unit, *aliases}
        for directory in [etc] + [f"{etc}/{d}" for d in plan.listdir(etc)
                                  if d.endswith(tuple(DEPENDENCY_DIRS.values()))]:
            for entry in plan.listdir(directory):
                link = f"{directory}/{entry}"
                found_link = plan.current(link)
                if found_link is None or found_link[0] != "symlink" or found_link[1] == "/dev/null":
                    continue
                points_here = posixpath.basename(found_link[1] or "") == unit_file
                if entry in names or (unit == unit_file and points_here and "@" in unit):
                    plan.link(link, None)
    for also in install.get("Also", []):
        plan_systemd(plan, also, state, seen)
