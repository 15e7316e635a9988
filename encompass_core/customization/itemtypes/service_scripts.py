"""Service links of script-based inits: SysV ``/etc/rcN.d``, OpenRC runlevels, busybox ``rcS``
(see :mod:`.service`)."""

from __future__ import annotations

import re

from ...errors import InvalidInput, NotFound
from .service_plan import SERVICE_NAME, LinkPlan

SYSV_LEVELS = ("0", "1", "2", "3", "4", "5", "6", "S")
_SYSV_LINK = re.compile(r"^([SK])(\d\d)(.+)$")


def _script(plan: LinkPlan, name: str) -> str:
    path = plan.at(f"/etc/init.d/{name}")
    if not plan.path_exists(path):
        raise NotFound(f"item '{plan.item.key}': no init script /etc/init.d/{name} under "
                       f"{plan.item.path}; check the name")
    return path


def _lsb_levels(plan: LinkPlan, name: str, path: str) -> tuple[list[str], list[str]]:
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


def plan_sysv(plan: LinkPlan, name: str, state: str) -> None:
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


def plan_openrc(plan: LinkPlan, name: str, state: str) -> None:
    if state == "mask":
        raise InvalidInput(f"item '{plan.item.key}': 'mask' is for systemd; use {name}:off")
    _script(plan, name)
    runlevel = str(plan.item.params.get("runlevel", "default"))
    if not SERVICE_NAME.fullmatch(runlevel):
        raise InvalidInput(f"item '{plan.item.key}': runlevel={runlevel!r} is not a runlevel name")
    runlevels = plan.at("/etc/runlevels")
    if state == "on":
        plan.link(f"{runlevels}/{runlevel}/{name}", f"/etc/init.d/{name}")
    else:
        for level in plan.listdir(runlevels):
            if name in plan.listdir(f"{runlevels}/{level}"):
                plan.link(f"{runlevels}/{level}/{name}", None)


def plan_busybox(plan: LinkPlan, name: str, state: str) -> None:
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
