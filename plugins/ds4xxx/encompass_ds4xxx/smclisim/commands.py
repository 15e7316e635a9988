"""The script commands the simulated controllers run, against the state and tgt.

Each command checks everything first, then does what tgt must do, then changes the state:
a refused command changes nothing. Errors are :class:`ScriptError` with the simulator's code.
"""

from __future__ import annotations

import datetime
import os
import re
import secrets
import subprocess
import time
from collections.abc import Callable
from typing import Any

from . import render
from .script import Command, parse_capacity
from .state import drive_by_label, free_capacity
from .tgt import Tgt, TgtError

# The simulator's error codes (a real controller's numbers differ; see the README).
ERR_INTERNAL = 1000
ERR_NOT_FOUND = 1001
ERR_NAME_IN_USE = 1002
ERR_NO_CAPACITY = 1003
ERR_LUN_IN_USE = 1004
ERR_ALREADY_MAPPED = 1005
ERR_HOST_NOT_FOUND = 1006
ERR_PORT_IN_USE = 1007
ERR_ARRAY_NOT_FOUND = 1008
ERR_PASSWORD = 1009
ERR_IN_COPY = 1010
ERR_NO_COPY = 1011
ERR_BAD_BASE = 1012
ERR_TARGET_TOO_SMALL = 1013
ERR_NOT_MAPPED = 1014
ERR_BAD_VALUE = 1015

_LABEL = re.compile(r"^[A-Za-z0-9_#-]{1,30}$")
_PRIORITIES = ("lowest", "low", "medium", "high", "highest")
_CHUNK = 1 << 20


class ScriptError(Exception):
    """A command the controller refused: ``Error CODE - TEXT``."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


def _refuse(code: int, why: str) -> ScriptError:
    return ScriptError(code, f"The operation cannot complete because {why}.")


def _now() -> str:
    return datetime.datetime.now().strftime("%m/%d/%y %I:%M:%S %p")


def _check_label(label: str) -> None:
    if not _LABEL.match(label):
        raise _refuse(ERR_BAD_VALUE, f'the label "{label}" is not valid (1 to 30 letters, digits, '
                                     "underscores, hyphens or pound signs)")


class Subsystem:
    """The controllers: run commands against ``state``, serving LUNs through ``tgt``."""

    MUTATING = {"create", "set", "delete", "remove", "stop"}

    def __init__(self, state: dict[str, Any], tgt: Tgt, password_ok: bool) -> None:
        self.state = state
        self.tgt = tgt
        self.password_ok = password_ok

    # -- dispatch ------------------------------------------------------------------------------
    def handler(self, command: Command) -> Callable[[Command], str] | None:
        """The method running ``command``, or None (a syntax error)."""
        verb = command.verb(2)
        table = {
            ("show", "storagesubsystem"): self.show_subsystem,
            ("show", "logicaldrives"): self.show_drives,
            ("show", "alllogicaldrives"): self.show_drives,
            ("show", "logicaldrive"): self.show_drives,
            ("create", "logicaldrive"): self.create_drive,
            ("create", "flashcopylogicaldrive"): self.create_flashcopy,
            ("create", "volumecopy"): self.create_copy,
            ("show", "volumecopy"): self.show_copy,
            ("stop", "volumecopy"): self.stop_copy,
            ("remove", "volumecopy"): self.remove_copy,
            ("set", "logicaldrive"): self.set_drive,
            ("remove", "logicaldrive"): self.remove_mapping,
            ("delete", "logicaldrive"): self.delete_drives,
            ("delete", "logicaldrives"): self.delete_drives,
            ("create", "host"): self.create_host,
            ("create", "hostport"): self.create_host_port,
            ("delete", "host"): self.delete_host,
            ("delete", "hostport"): self.delete_host_port,
        }
        return table.get(verb)

    def run(self, command: Command) -> str:
        handler = self.handler(command)
        assert handler is not None  # the syntax check refused it
        if command.keywords[0] in self.MUTATING and not self.password_ok:
            raise _refuse(ERR_PASSWORD, "the storage subsystem password was not given or is not "
                                        "valid (use -p)")
        try:
            return handler(command)
        except TgtError as error:
            raise ScriptError(ERR_INTERNAL, f"The controller could not serve the change: {error}.") \
                from error

    # -- helpers -------------------------------------------------------------------------------
    def _drive(self, label: str) -> tuple[str, dict[str, Any]]:
        found = drive_by_label(self.state, label)
        if found is None:
            raise _refuse(ERR_NOT_FOUND, f'the logical drive "{label}" does not exist')
        return found

    def _one(self, command: Command, key: str) -> str:
        labels = command.lists.get(key)
        if not labels or len(labels) != 1:
            raise _refuse(ERR_BAD_VALUE, f"the command needs one {key} [\"label\"]")
        return labels[0]

    def _host(self, label: str) -> dict[str, Any]:
        host = self.state["hosts"].get(label)
        if host is None:
            raise _refuse(ERR_HOST_NOT_FOUND, f'the host "{label}" does not exist')
        return host

    def _label_free(self, label: str) -> None:
        _check_label(label)
        if drive_by_label(self.state, label) is not None:
            raise _refuse(ERR_NAME_IN_USE, f'the name "{label}" is already in use by another '
                                           "logical drive")

    def _new_drive(self, label: str, kind: str, array: str, capacity: int, **extra: Any) -> dict:
        ssid = self.state["next_ssid"]
        self.state["next_ssid"] = ssid + 1
        preferred = extra.pop("owner", None) or "AB"[ssid % 2]
        wwn = self.state["subsystem"]["wwn"][:16] + f"{ssid:08x}" + secrets.token_hex(4)
        drive = {"label": label, "kind": kind, "array": array, "capacity": capacity, "wwn": wwn,
                 "preferred": preferred, "owner": preferred, "base": None, "repository": None,
                 "file": os.path.join(self.state["data_dir"], f"drive-{ssid}.img"),
                 "mapping": None, "created": _now()}
        drive.update(extra)
        self.state["drives"][str(ssid)] = drive
        return drive

    def _copy_of(self, ssid: str) -> dict[str, Any] | None:
        """The copy pair a drive is in (as target or source)."""
        if ssid in self.state["copies"]:
            return self.state["copies"][ssid]
        return next((c for c in self.state["copies"].values() if c["source"] == ssid), None)

    # -- show ----------------------------------------------------------------------------------
    def show_subsystem(self, command: Command) -> str:
        part = command.keywords[2] if len(command.keywords) > 2 else "profile"
        parts = {"summary": render.summary, "hosttopology": render.topology,
                 "lunmappings": render.mappings, "profile": render.profile}
        if part not in parts:
            raise _refuse(ERR_BAD_VALUE, f"'show storageSubsystem {part}' is not known")
        return parts[part](self.state)

    def show_drives(self, command: Command) -> str:
        labels = command.lists.get("logicaldrive") or command.lists.get("logicaldrives")
        if labels:
            for label in labels:
                self._drive(label)
        return render.drives(self.state, labels)

    def show_copy(self, command: Command) -> str:
        if "target" in command.lists:
            ssid, _ = self._drive(self._one(command, "target"))
            if ssid not in self.state["copies"]:
                raise _refuse(ERR_NO_COPY, f'the logical drive "{command.lists["target"][0]}" is '
                                           "not the target of a volume copy")
            return render.copies(self.state, [ssid])
        if "source" in command.lists:
            ssid, _ = self._drive(self._one(command, "source"))
            return render.copies(self.state, [t for t, c in self.state["copies"].items()
                                              if c["source"] == ssid])
        return render.copies(self.state, list(self.state["copies"]))

    # -- logical drives ------------------------------------------------------------------------
    def create_drive(self, command: Command) -> str:
        params = command.params
        label = params.get("userlabel")
        if label is None or "capacity" not in params or "array" not in params:
            raise _refuse(ERR_BAD_VALUE, "create logicalDrive needs array=, capacity= and userLabel=")
        self._label_free(label)
        array = params["array"]
        if array not in self.state["arrays"]:
            raise _refuse(ERR_ARRAY_NOT_FOUND, f"the array {array} does not exist")
        try:
            capacity = parse_capacity(params["capacity"])
        except ValueError as error:
            raise _refuse(ERR_BAD_VALUE, str(error)) from None
        if capacity <= 0:
            raise _refuse(ERR_BAD_VALUE, "the capacity must be more than zero")
        free = free_capacity(self.state, array)
        if capacity > free:
            raise _refuse(ERR_NO_CAPACITY, f"the array {array} does not have enough free capacity "
                                           f"({free} bytes free, {capacity} bytes requested)")
        owner = params.get("owner", "").upper() or None
        if owner not in (None, "A", "B"):
            raise _refuse(ERR_BAD_VALUE, "owner must be a or b")
        drive = self._new_drive(label, "standard", array, capacity, owner=owner)
        with open(drive["file"], "wb") as file:
            file.truncate(capacity)  # sparse: a new logical drive reads as zeros
        return ""

    def create_flashcopy(self, command: Command) -> str:
        params = command.params
        base_label = params.get("baselogicaldrive")
        if base_label is None:
            raise _refuse(ERR_BAD_VALUE, "create FlashCopyLogicalDrive needs baseLogicalDrive=")
        base_ssid, base = self._drive(base_label)
        if base["kind"] != "standard":
            raise _refuse(ERR_BAD_BASE, f'the logical drive "{base_label}" is a {base["kind"]} '
                                        "logical drive; a FlashCopy needs a standard base")
        number = 1 + sum(1 for d in self.state["drives"].values() if d["base"] == base_ssid
                         and d["kind"] == "flashcopy")
        label = params.get("userlabel") or f"{base_label}-{number}"
        repository_label = params.get("repositoryuserlabel") or f"{base_label}-R{number}"
        self._label_free(label)
        self._label_free(repository_label)
        if label == repository_label:
            raise _refuse(ERR_NAME_IN_USE, f'the name "{label}" is given twice')
        try:
            percent = int(params.get("repositorypercentofbase", "20"))
        except ValueError:
            raise _refuse(ERR_BAD_VALUE, "repositoryPercentOfBase is a whole number") from None
        if not 1 <= percent <= 100:
            raise _refuse(ERR_BAD_VALUE, "repositoryPercentOfBase is between 1 and 100")
        repository_size = max(-(-base["capacity"] * percent // 100 // 512) * 512, 512)
        free = free_capacity(self.state, base["array"])
        if repository_size > free:
            raise _refuse(ERR_NO_CAPACITY, f"the array {base['array']} does not have enough free "
                                           f"capacity for the repository ({free} bytes free, "
                                           f"{repository_size} bytes requested)")
        repository = self._new_drive(repository_label, "repository", base["array"], repository_size,
                                     base=base_ssid, owner=base["owner"])
        repository_ssid = str(self.state["next_ssid"] - 1)
        flash = self._new_drive(label, "flashcopy", base["array"], base["capacity"], base=base_ssid,
                                repository=repository_ssid, owner=base["owner"])
        repository["file"] = None
        # The simulator's point-in-time image is a full sparse copy (reflinked where the
        # filesystem can): tgt serves plain files. See the README.
        done = subprocess.run(["cp", "--reflink=auto", "--sparse=always", base["file"], flash["file"]],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            del self.state["drives"][repository_ssid]
            del self.state["drives"][str(self.state["next_ssid"] - 1)]
            raise ScriptError(ERR_INTERNAL, f"The controller could not make the FlashCopy: "
                                            f"{done.stderr.strip()}.")
        return ""

    def set_drive(self, command: Command) -> str:
        ssid, drive = self._drive(self._one(command, "logicaldrive"))
        params = command.params
        if "userlabel" in params:
            if params["userlabel"] != drive["label"]:
                self._label_free(params["userlabel"])
            drive["label"] = params["userlabel"]
            return ""
        if "logicalunitnumber" in params:
            return self._map(ssid, drive, params)
        raise _refuse(ERR_BAD_VALUE, "set logicalDrive needs userLabel= or logicalUnitNumber= host=")

    def _map(self, ssid: str, drive: dict[str, Any], params: dict[str, str]) -> str:
        host_label = params.get("host")
        if host_label is None:
            raise _refuse(ERR_BAD_VALUE, "a LUN mapping needs host=")
        host = self._host(host_label)
        try:
            lun = int(params["logicalunitnumber"])
        except ValueError:
            raise _refuse(ERR_BAD_VALUE, "logicalUnitNumber is a whole number") from None
        if not 0 <= lun <= 255:
            raise _refuse(ERR_BAD_VALUE, "logicalUnitNumber is between 0 and 255")
        if drive["kind"] == "repository":
            raise _refuse(ERR_BAD_VALUE, "a repository logical drive cannot be mapped")
        mapping = drive["mapping"]
        if mapping is not None and mapping["host"] != host_label:
            raise _refuse(ERR_ALREADY_MAPPED, f'the logical drive "{drive["label"]}" is already '
                                              f'mapped to host "{mapping["host"]}" (LUN {mapping["lun"]})')
        for other in self.state["drives"].values():
            if other is not drive and other["mapping"] == {"host": host_label, "lun": lun}:
                raise _refuse(ERR_LUN_IN_USE, f'LUN {lun} of host "{host_label}" is already used '
                                              f'by the logical drive "{other["label"]}"')
        if mapping is not None:  # a new LUN for the same host
            self.tgt.delete_lun(host["tid"], mapping["lun"])
        self.tgt.new_lun(host["tid"], lun, drive["file"], drive["wwn"])
        drive["mapping"] = {"host": host_label, "lun": lun}
        return ""

    def remove_mapping(self, command: Command) -> str:
        if "lunmapping" not in command.flags + command.keywords:
            raise _refuse(ERR_BAD_VALUE, "remove logicalDrive [...] needs lunMapping")
        labels = command.lists.get("logicaldrive") or []
        if not labels:
            raise _refuse(ERR_BAD_VALUE, 'remove logicalDrive needs ["label"]')
        found = [self._drive(label) for label in labels]
        host_label = command.params.get("host")
        for _, drive in found:
            mapping = drive["mapping"]
            if mapping is None or (host_label is not None and mapping["host"] != host_label):
                raise _refuse(ERR_NOT_MAPPED, f'the logical drive "{drive["label"]}" is not mapped'
                                              + (f' to host "{host_label}"' if host_label else ""))
        for _, drive in found:
            self._unmap(drive)
        return ""

    def _unmap(self, drive: dict[str, Any]) -> None:
        mapping = drive["mapping"]
        if mapping is None:
            return
        host = self.state["hosts"].get(mapping["host"])
        if host is not None:
            self.tgt.delete_lun(host["tid"], mapping["lun"])
        drive["mapping"] = None

    def delete_drives(self, command: Command) -> str:
        labels = command.lists.get("logicaldrive") or command.lists.get("logicaldrives") or []
        if not labels:
            raise _refuse(ERR_BAD_VALUE, 'delete logicalDrive needs ["label"]')
        found = [self._drive(label) for label in labels]
        for ssid, drive in found:
            copy = self._copy_of(ssid)
            if copy is not None and copy["status"] == "In progress":
                raise _refuse(ERR_IN_COPY, f'the logical drive "{drive["label"]}" is in a volume copy '
                                           "in progress (stop volumeCopy first)")
        for ssid, _ in found:
            self._delete(ssid)
        return ""

    def _delete(self, ssid: str) -> None:
        """Delete a drive with what depends on it: a base's FlashCopies, a FlashCopy's
        repository (as the subsystem does), and its mapping and copy pairs."""
        drive = self.state["drives"].get(ssid)
        if drive is None:
            return
        for other_ssid, other in list(self.state["drives"].items()):
            if other["base"] == ssid and other["kind"] == "flashcopy":
                self._delete(other_ssid)
        self._unmap(drive)
        if drive.get("repository"):
            self.state["drives"].pop(drive["repository"], None)
        for target, copy in list(self.state["copies"].items()):
            if target == ssid or copy["source"] == ssid:
                del self.state["copies"][target]
        del self.state["drives"][ssid]
        if drive["file"]:
            try:
                os.unlink(drive["file"])
            except FileNotFoundError:
                pass

    # -- volume copy ---------------------------------------------------------------------------
    def create_copy(self, command: Command) -> str:
        params = command.params
        if "source" not in params or "target" not in params:
            raise _refuse(ERR_BAD_VALUE, "create volumeCopy needs source= and target=")
        source_ssid, source = self._drive(params["source"])
        target_ssid, target = self._drive(params["target"])
        if source_ssid == target_ssid:
            raise _refuse(ERR_BAD_VALUE, "a volume copy needs two logical drives")
        if target["kind"] != "standard" or source["kind"] == "repository":
            raise _refuse(ERR_BAD_BASE, "a volume copy goes from a standard or FlashCopy logical drive "
                                        "to a standard logical drive")
        if target["capacity"] < source["capacity"]:
            raise _refuse(ERR_TARGET_TOO_SMALL, f'the target "{target["label"]}" ({target["capacity"]} '
                                                f'bytes) is smaller than the source ({source["capacity"]})')
        for ssid, drive in ((source_ssid, source), (target_ssid, target)):
            if self._copy_of(ssid) is not None or target_ssid in self.state["copies"]:
                raise _refuse(ERR_IN_COPY, f'the logical drive "{drive["label"]}" is already in a '
                                           "volume copy pair")
        priority = params.get("copypriority", "medium").lower()
        if priority not in _PRIORITIES:
            raise _refuse(ERR_BAD_VALUE, f"copyPriority is one of {', '.join(_PRIORITIES)}")
        read_only = params.get("targetreadonlyenabled", "TRUE").upper() != "FALSE"
        self.state["copies"][target_ssid] = {
            "source": source_ssid, "status": "In progress", "done": 0, "priority": priority,
            "read_only": read_only, "started": time.time(), "started_text": _now(), "completed": None,
        }
        target["owner"] = source["owner"]  # both drives of a copy belong to one controller
        return ""

    def stop_copy(self, command: Command) -> str:
        ssid, _ = self._drive(self._one(command, "target"))
        copy = self.state["copies"].get(ssid)
        if copy is None:
            raise _refuse(ERR_NO_COPY, f'the logical drive "{command.lists["target"][0]}" is not the '
                                       "target of a volume copy")
        if copy["status"] == "In progress":
            copy["status"] = "Stopped"
        return ""

    def remove_copy(self, command: Command) -> str:
        ssid, drive = self._drive(self._one(command, "target"))
        copy = self.state["copies"].get(ssid)
        if copy is None:
            raise _refuse(ERR_NO_COPY, f'the logical drive "{drive["label"]}" is not the target of '
                                       "a volume copy")
        if copy["status"] == "In progress":
            raise _refuse(ERR_IN_COPY, f'the volume copy to "{drive["label"]}" is in progress '
                                       "(stop volumeCopy first)")
        del self.state["copies"][ssid]
        drive["owner"] = drive["preferred"]
        return ""

    # -- hosts ---------------------------------------------------------------------------------
    def create_host(self, command: Command) -> str:
        label = command.params.get("userlabel")
        if label is None:
            raise _refuse(ERR_BAD_VALUE, "create host needs userLabel=")
        _check_label(label)
        if label in self.state["hosts"]:
            raise _refuse(ERR_NAME_IN_USE, f'the name "{label}" is already in use by another host')
        tid = self.state["next_tid"]
        slug = "".join(c if c.isalnum() else "-" for c in label.lower())
        target = f"{self.state['iscsi']['target_name']}.h{tid}.{slug}"
        self.tgt.new_target(tid, target)
        self.state["next_tid"] = tid + 1
        self.state["hosts"][label] = {"type": command.params.get("hosttype", "Linux"), "tid": tid,
                                      "target": target, "ports": {}}
        return ""

    def create_host_port(self, command: Command) -> str:
        params = command.params
        identifier, label, host_label = params.get("identifier"), params.get("userlabel"), params.get("host")
        if identifier is None or label is None or host_label is None:
            raise _refuse(ERR_BAD_VALUE, "create hostPort needs identifier=, userLabel= and host=")
        _check_label(label)
        interface = params.get("interfacetype", "FC").upper()
        if interface not in ("FC", "SAS", "ISCSI"):
            raise _refuse(ERR_BAD_VALUE, "interfaceType is FC, SAS or iSCSI")
        host = self._host(host_label)
        for other_label, other in self.state["hosts"].items():
            if identifier in other["ports"]:
                raise _refuse(ERR_PORT_IN_USE, f'the host port identifier "{identifier}" is already '
                                               f'defined for host "{other_label}"')
            if any(port["label"] == label for port in other["ports"].values()):
                raise _refuse(ERR_NAME_IN_USE, f'the name "{label}" is already in use by another '
                                               "host port")
        if interface == "ISCSI":
            self.tgt.bind(host["tid"], identifier)
        host["ports"][identifier] = {"label": label, "interface": interface}
        return ""

    def delete_host(self, command: Command) -> str:
        label = self._one(command, "host")
        host = self._host(label)
        for drive in self.state["drives"].values():
            if drive["mapping"] and drive["mapping"]["host"] == label:
                drive["mapping"] = None
        self.tgt.delete_target(host["tid"])
        del self.state["hosts"][label]
        return ""

    def delete_host_port(self, command: Command) -> str:
        label = self._one(command, "hostport")
        for host in self.state["hosts"].values():
            for identifier, port in list(host["ports"].items()):
                if port["label"] == label:
                    if port["interface"] == "ISCSI":
                        self.tgt.unbind(host["tid"], identifier)
                    del host["ports"][identifier]
                    return ""
        raise _refuse(ERR_NOT_FOUND, f'the host port "{label}" does not exist')


def advance_copies(state: dict[str, Any]) -> None:
    """Let every volume copy in progress catch up with the time gone by (``copy_rate`` bytes a
    second; 0: at once): the controllers' background work, done when someone asks."""
    rate = state.get("copy_rate", 0)
    for target_ssid, copy in state["copies"].items():
        if copy["status"] != "In progress":
            continue
        source = state["drives"][copy["source"]]
        target = state["drives"][target_ssid]
        total = source["capacity"]
        due = total if not rate else min(total, int(rate * (time.time() - copy["started"])))
        if due > copy["done"]:
            _copy_range(source["file"], target["file"], copy["done"], due)
            copy["done"] = due
        if copy["done"] >= total:
            copy["status"] = "Completed"
            copy["completed"] = _now()


def _copy_range(source: str, target: str, start: int, end: int) -> None:
    """Copy bytes [start, end): zero chunks of the source are written only over data."""
    with open(source, "rb") as reading, open(target, "r+b") as writing:
        position = start
        while position < end:
            size = min(_CHUNK, end - position)
            reading.seek(position)
            data = reading.read(size)
            if data.count(0) == len(data):
                writing.seek(position)
                if writing.read(size).count(0) == size:
                    position += size
                    continue
            writing.seek(position)
            writing.write(data)
            position += size
