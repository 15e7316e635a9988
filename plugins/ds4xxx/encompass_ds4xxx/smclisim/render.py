"""SMcli's output formats for the ``show`` commands (see the README for each one)."""

from __future__ import annotations

from typing import Any

from .script import format_capacity
from .state import free_capacity

_RULE = "-" * 30


def _wwn(hex_text: str) -> str:
    return ":".join(hex_text[i:i + 2] for i in range(0, len(hex_text), 2))


def _table(rows: list[list[str]], indent: str = "   ") -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [indent + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
            for row in rows]


def summary(state: dict[str, Any]) -> str:
    subsystem = state["subsystem"]
    iscsi = state["iscsi"]
    address, _, port = iscsi["portal"].rpartition(":")
    lines = [f"SUMMARY{_RULE}", "",
             f"   Storage Subsystem Name:          {subsystem['name']}",
             f"   Storage Subsystem world-wide identifier (ID): {_wwn(subsystem['wwn'])}",
             f"   Number of controllers:           {len(subsystem['controllers'])}",
             f"   Number of arrays:                {len(state['arrays'])}",
             f"   Number of standard logical drives: "
             f"{sum(d['kind'] == 'standard' for d in state['drives'].values())}",
             f"   Number of FlashCopy logical drives: "
             f"{sum(d['kind'] == 'flashcopy' for d in state['drives'].values())}",
             f"   Number of hosts:                 {len(state['hosts'])}", "",
             "   CONTROLLERS", ""]
    for slot, controller in subsystem["controllers"].items():
        lines += [f"      Controller in slot {slot}",
                  f"         Status:               {'Online' if controller['online'] else 'Offline'}",
                  f"         Management address:   {controller['address']}"]
    lines += ["", "   iSCSI", "",
              f"      iSCSI target name:        {iscsi['target_name']}",
              "      Host port A1",
              f"         IPv4 address:          {address}",
              f"         TCP listening port:    {port}", ""]
    return "\n".join(lines) + "\n"


def arrays(state: dict[str, Any]) -> str:
    lines = [f"ARRAYS{_RULE}", ""]
    for number, array in sorted(state["arrays"].items()):
        lines += [f"   Array {number} (RAID {array['raid']})", "",
                  "      Status:              Optimal",
                  f"      Capacity:            {format_capacity(array['capacity'])}",
                  f"      Free capacity:       {format_capacity(free_capacity(state, number))}", ""]
    return "\n".join(lines) + "\n"


def _drive_details(state: dict[str, Any], ssid: str, drive: dict[str, Any]) -> list[str]:
    lines = [f"   Logical Drive name: {drive['label']}", "",
             "      Logical Drive status:       Optimal", "",
             f"      Capacity:                   {format_capacity(drive['capacity'])}",
             f"      Logical Drive ID:           {_wwn(drive['wwn'])}",
             f"      Subsystem ID (SSID):        {ssid}",
             f"      Associated array:           {drive['array']}"]
    if drive["kind"] == "flashcopy":
        base = state["drives"].get(drive["base"], {})
        repository = state["drives"].get(drive["repository"] or "", {})
        lines += [f"      Base logical drive:         {base.get('label', '')}",
                  f"      Repository logical drive:   {repository.get('label', '')}"]
    if drive["kind"] == "repository":
        base = state["drives"].get(drive["base"], {})
        lines.append(f"      Base logical drive:         {base.get('label', '')}")
    lines += [f"      RAID level:                 {state['arrays'][drive['array']]['raid']}", "",
              f"      Preferred owner:            Controller in slot {drive['preferred']}",
              f"      Current owner:              Controller in slot {drive['owner']}",
              f"      Creation date:              {drive.get('created', '')}", ""]
    return lines


def drives(state: dict[str, Any], labels: list[str] | None = None) -> str:
    """``show logicalDrives``: a section per kind, each a summary table and details."""
    chosen = {ssid: d for ssid, d in state["drives"].items() if not labels or d["label"] in labels}
    out = []
    for kind, title in (("standard", "STANDARD LOGICAL DRIVES"),
                        ("repository", "FLASHCOPY REPOSITORY LOGICAL DRIVES"),
                        ("flashcopy", "FLASHCOPY LOGICAL DRIVES")):
        mine = sorted(((int(s), s, d) for s, d in chosen.items() if d["kind"] == kind))
        if not mine and kind != "standard":
            continue
        lines = [f"{title}{_RULE}", "", "SUMMARY", "",
                 f"   Number of {title.lower()}: {len(mine)}", ""]
        if mine:
            rows = [["NAME", "STATUS", "CAPACITY", "RAID LEVEL", "ARRAY"]]
            rows += [[d["label"], "Optimal", format_capacity(d["capacity"]),
                      state["arrays"][d["array"]]["raid"], d["array"]] for _, _, d in mine]
            lines += _table(rows) + ["", "DETAILS", ""]
            for _, ssid, drive in mine:
                lines += _drive_details(state, ssid, drive)
        out.append("\n".join(lines) + "\n")
    return "\n".join(out)


def mappings(state: dict[str, Any]) -> str:
    mapped = sorted(((d["mapping"]["host"], d["mapping"]["lun"], d) for d in state["drives"].values()
                     if d["mapping"]), key=lambda row: (row[0], row[1]))
    hosts_used = len({host for host, _, _ in mapped})
    lines = [f"MAPPINGS (Storage Partitioning - Enabled ({hosts_used} of 64 used)){_RULE}", ""]
    rows = [["Logical Drive Name", "LUN", "Controller", "Accessible by", "Logical Drive status"]]
    rows += [[d["label"], str(lun), d["owner"], f"Host {host}", "Optimal"] for host, lun, d in mapped]
    return "\n".join(lines + _table(rows) + [""]) + "\n"


def topology(state: dict[str, Any]) -> str:
    lines = ["TOPOLOGY DEFINITIONS", "", "   DEFAULT GROUP", "",
             "      Default type:  Linux", ""]
    for label, host in sorted(state["hosts"].items()):
        lines += [f"      Host: {label}", "",
                  f"         Host type:               {host['type']}",
                  f"         iSCSI target name:       {host['target']}"]
        for identifier, port in sorted(host["ports"].items()):
            interface = "iSCSI" if port["interface"] == "ISCSI" else port["interface"]
            lines += [f"         Host port identifier:    {identifier}",
                      f"            Alias:                {port['label']}",
                      f"            Interface type:       {interface}"]
        lines.append("")
    return "\n".join(lines) + "\n"


def copies(state: dict[str, Any], targets: list[str]) -> str:
    lines = [f"VOLUME COPY PAIRS{_RULE}", "",
             f"   Number of copy pairs: {len(targets)}", ""]
    for target_ssid in sorted(targets, key=int):
        copy = state["copies"][target_ssid]
        source = state["drives"][copy["source"]]
        target = state["drives"][target_ssid]
        percent = int(100 * copy["done"] // max(source["capacity"], 1))
        lines += [f"   Copy pair: {source['label']} and {target['label']}",
                  f"      Copy status:              {copy['status']}",
                  f"      Percent complete:         {percent}%",
                  f"      Start timestamp:          {copy['started_text']}",
                  f"      Completion timestamp:     {copy['completed'] or 'None'}",
                  f"      Copy priority:            {copy['priority'].capitalize()}",
                  f"      Source logical drive:     {source['label']}",
                  f"      Target logical drive:     {target['label']}",
                  f"      Target read-only:         {'Enabled' if copy['read_only'] else 'Disabled'}", ""]
    return "\n".join(lines) + "\n"


def profile(state: dict[str, Any]) -> str:
    """``show storageSubsystem``: every section, as the profile prints them."""
    name = state["subsystem"]["name"]
    return "\n".join([f"PROFILE FOR STORAGE SUBSYSTEM: {name}", "", summary(state), arrays(state),
                      drives(state), mappings(state), topology(state)])
