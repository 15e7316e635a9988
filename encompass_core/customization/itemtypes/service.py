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
from .service_plan import SERVICE_NAME, LinkPlan, inside
from .service_scripts import plan_busybox, plan_openrc, plan_sysv
from .service_systemd import plan_systemd

PARAMS = {"init", "runlevel", "order"}
INITS = ("systemd", "openrc", "sysv", "busybox")
STATES = ("on", "off", "mask")
RECORD_DIR = "/var/lib/encompass/items"
SYSTEMD_BINARIES = ("/lib/systemd/systemd", "/usr/lib/systemd/systemd")


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
        if not SERVICE_NAME.fullmatch(name) or state not in STATES:
            raise InvalidInput(f"item '{item.key}': {entry!r} is not NAME[:on|off|mask] (names: "
                               "letters, digits, @ _ . + -), e.g. ssh:on")
        if name in parsed:
            raise InvalidInput(f"item '{item.key}': service {name!r} is given twice")
        parsed[name] = state
    return list(parsed.items())


def _record_path(item: CustomizationItem) -> str:
    return inside(item.path, f"{RECORD_DIR}/{item.key}.json")


def detect_init(fs: FileAccess, item: CustomizationItem) -> str:
    """The init system of the guest under the item's root (parameter ``init``, else found)."""
    named = str(item.params.get("init", "")).strip().lower()
    if named:
        return named
    root = item.path

    def has(path: str) -> bool:
        return fs.exists(inside(root, path))

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
        plan = LinkPlan(fs, item)
        seen: set[str] = set()
        for name, state in services:
            if init == "systemd":
                plan_systemd(plan, name, state, seen)
            elif init == "sysv":
                plan_sysv(plan, name, state)
            elif init == "openrc":
                plan_openrc(plan, name, state)
            else:
                plan_busybox(plan, name, state)
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
