"""``service``: enable or disable services at boot, offline, as the image's init would have it.

The value lists services, each ``NAME[:on|off|mask]`` (``on`` when no state is given),
separated by commas or spaces: ``ssh:on,rsync:off``. The item's path is the root of the
guest's system inside the volume (usually ``/``). The init system is found from the image's
files, or named by the parameter ``init``:

* ``systemd`` (a systemd binary in ``/lib/systemd`` or ``/usr/lib/systemd``): ``on`` makes the
  links ``systemctl enable`` makes from the unit's ``[Install]`` section (``WantedBy=``,
  ``RequiredBy=``, ``UpheldBy=``, ``Alias=``, ``Also=``, ``DefaultInstance=``) and removes a
  mask; ``off`` removes the unit's links from ``/etc/systemd/system`` as ``systemctl disable``
  does; ``mask`` links the unit to ``/dev/null``. A name without a suffix is a ``.service``.
* ``openrc`` (``/sbin/openrc`` or ``/etc/runlevels``): ``on`` links ``/etc/init.d/NAME`` into
  ``/etc/runlevels/RUNLEVEL`` (parameter ``runlevel``, default ``default``); ``off`` removes
  it from every runlevel.
* ``sysv`` (``/etc/rc2.d`` or ``/etc/rcS.d``): from the LSB header of ``/etc/init.d/NAME``,
  ``on`` makes ``S`` links in its ``Default-Start`` runlevels and ``K`` links in its
  ``Default-Stop`` ones; ``off`` leaves only ``K`` links (as ``update-rc.d disable``). The
  sequence number of an existing link is kept, else it is ``01``.
* ``busybox`` (``/etc/init.d/rcS`` or ``/bin/busybox``: busybox init running
  ``/etc/init.d/rcS``, which starts the ``S??*`` scripts of ``/etc/init.d`` in order, as
  Buildroot's does): ``on`` links ``/etc/init.d/S50NAME`` (parameter ``order``) to ``NAME``;
  ``off`` removes the ``S??NAME`` links.

Every name is checked (its unit or script exists, its state fits the init) before anything is
written. What the item changed is recorded in ``/var/lib/encompass/items/KEY.json`` under the
root: each link's path and what stood there before. Revert puts exactly those links back (and
removes the directories it made, when empty), then removes the record.
"""

from __future__ import annotations

import json
import posixpath
import re

from ...errors import Conflict, InvalidInput, NotFound
from ...model import CustomizationItem
from ..access import FileAccess
from ..fsutil import restore, set_link, write_file
from ..items import check_params

PARAMS = {"init", "runlevel", "order"}
INITS = ("systemd", "openrc", "sysv", "busybox")
STATES = ("on", "off", "mask")
RECORD_DIR = "/var/lib/encompass/items"
SYSTEMD_BINARIES = ("/lib/systemd/systemd", "/usr/lib/systemd/systemd")
SYSTEMD_ETC = "/etc/systemd/system"
# Where `systemctl --root` looks for unit files, in its order (/run is empty offline).
UNIT_DIRS = (SYSTEMD_ETC, "/usr/local/lib/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system")
UNIT_SUFFIXES = (".service", ".socket", ".target", ".timer", ".path", ".mount", ".automount",
                 ".swap", ".slice", ".scope", ".device")
DEPENDENCY_DIRS = {"WantedBy": ".wants", "RequiredBy": ".requires", "UpheldBy": ".upholds"}
SYSV_LEVELS = ("0", "1", "2", "3", "4", "5", "6", "S")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9@_.+\\-]*")
_SYSV_LINK = re.compile(r"^([SK])(\d\d)(.+)$")


def parse_services(item: CustomizationItem, value: str) -> list[tuple[str, str]]:
    """``"a:on,b:off c"`` as ``[("a", "on"), ("b", "off"), ("c", "on")]``; one clear line for a
    bad entry (the value names services: it is no secret)."""
    entries = [part for part in re.split(r"[,\s]+", value.strip()) if part]
    if not entries:
        raise InvalidInput(f"item '{item.key}': no service given; give NAME[:on|off|mask],... "
                           "e.g. ssh:on,rsync:off")
    parsed: dict[str, str] = {}
    for entry in entries:
        name, _, state = entry.partition(":")
        state = state.lower() or "on"
        if not _NAME.fullmatch(name) or state not in STATES:
            raise InvalidInput(f"item '{item.key}': {entry!r} is not NAME[:on|off|mask] (names: "
                               "letters, digits, @ _ . + -), e.g. ssh:on")
        if name in parsed:
            raise InvalidInput(f"item '{item.key}': service {name!r} is given twice")
        parsed[name] = state
    return list(parsed.items())


def _inside(root: str, path: str) -> str:
    return posixpath.normpath(posixpath.join(root, path.lstrip("/")))


def _record_path(item: CustomizationItem) -> str:
    return _inside(item.path, f"{RECORD_DIR}/{item.key}.json")


def detect_init(fs: FileAccess, item: CustomizationItem) -> str:
    """The init system of the guest under the item's root (parameter ``init``, else found)."""
    named = str(item.params.get("init", "")).strip().lower()
    if named:
        return named
    root = item.path

    def has(path: str) -> bool:
        return fs.exists(_inside(root, path))

    if any(has(p) for p in SYSTEMD_BINARIES):
        return "systemd"
    if has("/sbin/openrc") or has("/etc/runlevels"):
        return "openrc"
    if has("/etc/rc2.d") or has("/etc/rcS.d"):
        return "sysv"
    if has("/etc/init.d/rcS") or has("/bin/busybox"):
        return "busybox"
    raise NotFound(f"item '{item.key}': no init system found under {root} (no systemd, OpenRC, "
                   "SysV rc.d or busybox); check the item's path, or set --param init=...")


class _Plan:
    """Links to make (target) or remove (None), checked before anything is written."""

    def __init__(self, fs: FileAccess, item: CustomizationItem) -> None:
        self.fs = fs
        self.item = item
        self.links: dict[str, str | None] = {}

    def at(self, path: str) -> str:
        return _inside(self.item.path, path)

    def current(self, path: str) -> tuple[str, str | None] | None:
        """(kind, link target) of what stands at ``path`` now, or None."""
        if self.path_exists(path):
            info = self.fs.stat(path)
            return info.kind, info.target
        return None

    def path_exists(self, path: str) -> bool:
        return self.fs.exists(path)

    def listdir(self, path: str) -> list[str]:
        if not self.fs.exists(path) or self.fs.stat(path).kind != "dir":
            return []
        return self.fs.listdir(path)

    def link(self, path: str, target: str | None) -> None:
        found = self.current(path)
        if found is not None and found[0] != "symlink":
            what = "directory" if found[0] == "dir" else "file"
            raise Conflict(f"item '{self.item.key}': {path} is a {what}, not a link; move it "
                           "away, the item only makes and removes links")
        if (found[1] if found else None) != target:
            self.links[path] = target


# ------------------------------------------------------------------------- systemd


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


def _find_unit(plan: _Plan, unit: str) -> tuple[str, dict[str, list[str]]] | None:
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


def _guest_path(plan: _Plan, path: str) -> str:
    """A path in the volume as the guest sees it (without the item's root)."""
    root = plan.item.path.rstrip("/")
    return path[len(root):] if root and path.startswith(root + "/") else path


def _plan_systemd(plan: _Plan, name: str, state: str, seen: set[str]) -> None:
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
        _plan_systemd(plan, also, state, seen)


# ------------------------------------------------------------------ sysv, openrc, busybox


def _script(plan: _Plan, name: str) -> str:
    path = plan.at(f"/etc/init.d/{name}")
    if not plan.path_exists(path):
        raise NotFound(f"item '{plan.item.key}': no init script /etc/init.d/{name} under "
                       f"{plan.item.path}; check the name")
    return path


def _lsb_levels(plan: _Plan, name: str, path: str) -> tuple[list[str], list[str]]:
    text = plan.fs.read(path).decode("utf-8", errors="replace")
    if "### BEGIN INIT INFO" not in text:
        raise InvalidInput(f"item '{plan.item.key}': /etc/init.d/{name} has no LSB header "
                           "(### BEGIN INIT INFO): its runlevels are unknown")
    levels: dict[str, list[str]] = {"Default-Start": [], "Default-Stop": []}
    header = text.split("### BEGIN INIT INFO", 1)[1].split("### END INIT INFO", 1)[0]
    for line in header.splitlines():
        key, _, value = line.lstrip("#").strip().partition(":")
        if key in levels:
            levels[key] = [level for level in value.split() if level in SYSV_LEVELS]
    return levels["Default-Start"], levels["Default-Stop"]


def _plan_sysv(plan: _Plan, name: str, state: str) -> None:
    if state == "mask":
        raise InvalidInput(f"item '{plan.item.key}': 'mask' is for systemd; use {name}:off")
    start, stop = _lsb_levels(plan, name, _script(plan, name))
    existing: dict[str, dict[str, str]] = {}  # level -> link name -> sequence number
    for level in SYSV_LEVELS:
        for entry in plan.listdir(plan.at(f"/etc/rc{level}.d")):
            match = _SYSV_LINK.match(entry)
            if match and match.group(3) == name:
                existing.setdefault(level, {})[entry] = match.group(2)
    wanted: dict[str, str] = {}  # level -> S or K
    for level in stop:
        wanted[level] = "K"
    for level in start:
        wanted[level] = "S" if state == "on" else "K"
    for level in SYSV_LEVELS:
        have = existing.get(level, {})
        keep = None
        if level in wanted:
            number = next(iter(have.values()), "01")
            keep = f"{wanted[level]}{number}{name}"
            plan.link(plan.at(f"/etc/rc{level}.d/{keep}"), f"../init.d/{name}")
        for entry in have:
            if entry != keep and not (state == "off" and entry.startswith("K")):
                plan.link(plan.at(f"/etc/rc{level}.d/{entry}"), None)


def _plan_openrc(plan: _Plan, name: str, state: str) -> None:
    if state == "mask":
        raise InvalidInput(f"item '{plan.item.key}': 'mask' is for systemd; use {name}:off")
    _script(plan, name)
    runlevel = str(plan.item.params.get("runlevel", "default"))
    if not _NAME.fullmatch(runlevel):
        raise InvalidInput(f"item '{plan.item.key}': runlevel={runlevel!r} is not a runlevel name")
    runlevels = plan.at("/etc/runlevels")
    if state == "on":
        plan.link(f"{runlevels}/{runlevel}/{name}", f"/etc/init.d/{name}")
    else:
        for level in plan.listdir(runlevels):
            if name in plan.listdir(f"{runlevels}/{level}"):
                plan.link(f"{runlevels}/{level}/{name}", None)


def _plan_busybox(plan: _Plan, name: str, state: str) -> None:
    if state == "mask":
        raise InvalidInput(f"item '{plan.item.key}': 'mask' is for systemd; use {name}:off")
    order = str(plan.item.params.get("order", "50"))
    if not re.fullmatch(r"\d\d", order):
        raise InvalidInput(f"item '{plan.item.key}': order={order!r} must be two digits, e.g. 50")
    init_d = plan.at("/etc/init.d")
    started = [e for e in plan.listdir(init_d) if re.fullmatch(rf"S\d\d{re.escape(name)}", e)]
    if state == "on":
        _script(plan, name)
        if not started:
            plan.link(f"{init_d}/S{order}{name}", name)
        return
    if not started and not plan.path_exists(f"{init_d}/{name}"):
        _script(plan, name)  # neither started nor there: a typo
    for entry in started:
        plan.link(f"{init_d}/{entry}", None)


# ----------------------------------------------------------------------- the item type


class ServiceCustomizer:
    """Enable, disable or mask services at boot by their links."""

    needs_value = True

    def validate(self, item: CustomizationItem) -> None:
        check_params(item, PARAMS)
        init = str(item.params.get("init", "")).strip().lower()
        if init and init not in INITS:
            raise InvalidInput(f"item '{item.key}': init={init!r} is not one of {', '.join(INITS)}")

    def check_value(self, item: CustomizationItem, value: str) -> None:
        """Refuse a malformed list before anything is written (names are checked in the image)."""
        parse_services(item, value)

    def plan(self, fs: FileAccess, item: CustomizationItem, value: str) -> tuple[str, dict[str, str | None]]:
        """The init system and the links the value asks for (read only: nothing is written)."""
        services = parse_services(item, value)
        init = detect_init(fs, item)
        plan = _Plan(fs, item)
        seen: set[str] = set()
        for name, state in services:
            if init == "systemd":
                _plan_systemd(plan, name, state, seen)
            elif init == "sysv":
                _plan_sysv(plan, name, state)
            elif init == "openrc":
                _plan_openrc(plan, name, state)
            else:
                _plan_busybox(plan, name, state)
        return init, plan.links

    def apply(self, fs: FileAccess, item: CustomizationItem, value: str, clone_name: str) -> None:
        record_path = _record_path(item)
        if fs.exists(record_path):  # applied already (another item on its path was re-applied)
            self._undo(fs, item)
        init, links = self.plan(fs, item, value)
        before = {path: (fs.stat(path).target if fs.exists(path) else None) for path in links}
        made = _missing_directories(fs, [posixpath.dirname(p) for p, t in links.items() if t])
        record_dirs = _missing_directories(fs, [posixpath.dirname(record_path)])
        record = {"init": init, "links": before, "directories": made, "record_directories": record_dirs}
        # The record first: a failure half-way leaves what revert needs.
        write_file(fs, record_path, (json.dumps(record, indent=1, sort_keys=True) + "\n").encode(),
                   mode=0o644, uid=0, gid=0)
        for directory in made:
            fs.mkdir(directory)
        for path, target in links.items():
            set_link(fs, path, target)

    def _undo(self, fs: FileAccess, item: CustomizationItem) -> bool:
        """Put back the links the record names; False when there is no record."""
        record_path = _record_path(item)
        if not fs.exists(record_path):
            return False
        try:
            record = json.loads(fs.read(record_path))
            links, made = dict(record["links"]), list(record["directories"])
        except (ValueError, KeyError, TypeError):
            raise Conflict(f"item '{item.key}': its record {record_path} is damaged; restore the "
                           "links by hand, then delete it") from None
        for path, target in links.items():
            set_link(fs, path, target)
        for directory in reversed(made):
            if fs.exists(directory) and not fs.listdir(directory):
                fs.rmdir(directory)
        fs.remove(record_path)
        for directory in reversed(record.get("record_directories", [])):
            if fs.exists(directory) and not fs.listdir(directory):
                fs.rmdir(directory)
        return True

    def revert(self, fs: FileAccess, item: CustomizationItem, parent_fs: FileAccess | None) -> None:
        self._undo(fs, item)
        restore(fs, parent_fs, _record_path(item))  # a record the parent had stays as it was


def _missing_directories(fs: FileAccess, directories: list[str]) -> list[str]:
    """The directories (and their missing parents) to make, parents first."""
    missing: list[str] = []
    for directory in directories:
        chain = []
        while directory not in ("", "/") and directory not in missing and not fs.exists(directory):
            chain.append(directory)
            directory = posixpath.dirname(directory)
        missing += reversed(chain)
    return list(dict.fromkeys(missing))
