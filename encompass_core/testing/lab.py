"""The lab: physical machines that are QEMU guests, for the chassis and AMT peers of the tests.

A real blade or AMT PC is a box a management peer (a BladeCenter management module, an AMT
firmware) powers on and off while no software runs on it; powered on, its firmware boots what its
boot order names. Here each such machine is a :class:`LabMachine`: a folder holding what the
machine *is* (its identity and boot order, ``machine.json``) and, while it is on, one QEMU
process under TCG (``power.json`` says which). Whoever plays the management peer (a
``pass_persist`` program behind snmpd, a WS-Man responder, a test) opens the same folder and
calls :meth:`LabMachine.power_on`, :meth:`~LabMachine.power_off`, :meth:`~LabMachine.reset`,
:meth:`~LabMachine.power_state`; several processes may do so at once (a lock file serializes
them), as a different user too (:meth:`Lab.hand_over`).

Powered on, the machine boots the first entry of its boot order that gives a device:

- ``san``: LUN 0 of the machine's host on the SAN, as an HBA configured with a portal finds it:
  an iSCSI SendTargets discovery at ``san_portal`` *as the machine's own initiator name*
  (``iscsi-ls -i IQN -s``) lists the targets and LUNs mapped to it; the first data LUN of the
  first target is the contract's LUN 0 (tgt keeps its own LUN 0 for the controller, so it is
  tgt's LUN 1 on the local pool's export and on the ds4xxx simulator). QEMU's iSCSI driver
  (Debian ``qemu-block-extra``) opens it with the same initiator name. Nothing mapped: the
  firmware finds no disk, as a real blade would, and the lab log says so.
- ``disk``: a disk file (``disk``), raw or ``.qcow2``, opened read-write.
- ``network``: the NIC is first in the firmware's order (there is no boot server: the firmware
  gives up and tries the next device); ``cd``: accepted, no CD is ever inserted; ``none``:
  nothing.

The machine keeps its identity across power cycles: SMBIOS system UUID, serial, manufacturer and
product (``-smbios type=1``), the MAC of its NIC (QEMU user networking, no host network) and its
iSCSI initiator name (its host port). Its serial console goes to ``console.log`` in its folder,
appended across power cycles; ``lab.log`` beside it says what each power-on booted.

Every QEMU is started through :mod:`encompass_core.rundir`: recorded as a helper of the process
that started it (its atexit cleanup, or ``encompass repair``'s sweep after a crash, ends it) and,
when started from a process's main thread, given ``setpriv --pdeathsig`` so it dies with that
process even when it is killed. :meth:`Lab.close` (or leaving ``with Lab(...)``) powers every
machine off, whoever started it. A guest that powers itself off ends its QEMU: the machine is
then ``off``, as a real one would be.

Example::

    with Lab(tmp_path / "lab") as lab:
        blade = lab.add("blade3", boot_order=("san",), san_portal=tgtd.portal)
        blade.power_on()
        blade.wait_for_console("encompass-demo: hostname web01")
        blade.power_off()

The public API (:class:`Lab`, :class:`LabMachine`, :class:`Identity`, :data:`BOOT_DEVICES`,
:func:`discover_boot_lun`) is stable: the BladeCenter and AMT peers build on it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import pwd
import re
import shutil
import subprocess
import threading
import time
import uuid as uuidlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs

from .. import rundir
from ..store import process_start_time

#: What a boot order may name, first tried first.
BOOT_DEVICES = ("network", "san", "disk", "cd", "none")
#: QEMU's ``-boot order`` letter for each device kind.
_QEMU_BOOT_LETTER = {"network": "n", "san": "c", "disk": "c", "cd": "d"}
#: How long an iSCSI discovery may take (a local tgtd answers at once).
DISCOVERY_TIMEOUT = 30.0
_LUN_LINE = re.compile(r"^\s*Lun:(\d+)\s+Type:(\S+)")
_TARGET_LINE = re.compile(r"^Target:(\S+)\s+Portal:(\S+)")


class LabError(RuntimeError):
    """A lab machine cannot do what was asked (QEMU missing or failing, a bad setting)."""


@attrs.frozen
class Identity:
    """What a lab machine keeps across power cycles: SMBIOS system UUID and serial, the MAC of
    its NIC, its iSCSI initiator name (its host port on the SAN), and the SMBIOS manufacturer and
    product (a blade says ``IBM`` / ``8853-AC1``)."""

    uuid: str
    serial: str
    mac: str
    initiator: str
    manufacturer: str = "IBM"
    product: str = "8853-AC1"


@attrs.frozen
class MachineSettings:
    """What a lab machine boots and with what: ``boot_order`` (from :data:`BOOT_DEVICES`),
    ``san_portal`` (``host:port`` of the iSCSI portal its HBA asks), ``disk`` (a disk file for
    ``disk``), ``memory_mib``."""

    boot_order: tuple[str, ...] = ("san",)
    san_portal: str | None = None
    disk: str | None = None
    memory_mib: int = 256


def identity_for(name: str, seed: str = "encompass-lab") -> Identity:
    """A stable identity made from the machine's name: the same name always gets the same
    UUID, serial, locally administered MAC and initiator name."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    mac = "52:54:00:" + ":".join(f"{byte:02x}" for byte in digest[:3])
    safe = re.sub(r"[^a-z0-9.-]+", "-", name.lower()).strip("-") or "machine"
    return Identity(uuid=str(uuidlib.UUID(bytes=digest[:16], version=4)),
                    serial=digest[16:20].hex().upper(), mac=mac,
                    initiator=f"iqn.2026-12.org.encompass.lab:{safe}")


def discover_boot_lun(portal: str, initiator: str) -> str | None:
    """The ``iscsi://PORTAL/TARGET/LUN`` URL of the first data LUN that ``initiator`` sees at
    ``portal`` (SendTargets discovery, as a boot HBA does), or ``None`` when nothing is mapped
    to it. Raises :class:`LabError` when the portal does not answer."""
    tool = shutil.which("iscsi-ls")
    if tool is None:
        raise LabError("iscsi-ls is not installed (apt-get install libiscsi-bin)")
    try:
        done = subprocess.run([tool, "-i", initiator, "-s", f"iscsi://{portal}"], capture_output=True,
                              text=True, timeout=DISCOVERY_TIMEOUT, check=False, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise LabError(f"the iSCSI portal {portal} did not answer in {DISCOVERY_TIMEOUT:g} s") from None
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().splitlines()
        if said and "reconnect" in said[-1]:
            return None  # libiscsi's words when the portal serves no target at all
        raise LabError(f"iSCSI discovery at {portal} failed: {said[-1] if said else done.returncode}")
    return _first_data_lun(done.stdout, portal)


def _first_data_lun(listing: str, portal: str) -> str | None:
    target = None
    for line in listing.splitlines():
        if found := _TARGET_LINE.match(line):
            target = found.group(1)
        elif (found := _LUN_LINE.match(line)) and target and found.group(2) == "DIRECT_ACCESS":
            return f"iscsi://{portal}/{target}/{found.group(1)}"
    return None


def _write_json(path: Path, data: dict[str, Any]) -> None:
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.chmod(partial, 0o644)
    os.replace(partial, path)


class LabMachine:
    """One lab machine: its folder, identity and settings; power it with the methods below.

    Obtain one from :meth:`Lab.add` or :meth:`Lab.machine` (any process may open the same
    folder: ``LabMachine(path)``).
    """

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        if not (self.directory / "machine.json").exists():
            raise LabError(f"no lab machine in {self.directory}")

    # -- what it is ------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """The machine's name (its folder's name)."""
        return self.directory.name

    def _document(self) -> dict[str, Any]:
        return json.loads((self.directory / "machine.json").read_text())

    @property
    def identity(self) -> Identity:
        """The identity it keeps across power cycles."""
        return Identity(**self._document()["identity"])

    @property
    def settings(self) -> MachineSettings:
        """What it boots (boot order, SAN portal, disk) and its memory."""
        document = self._document()["settings"]
        return MachineSettings(**{**document, "boot_order": tuple(document["boot_order"])})

    def configure(self, **changes: Any) -> MachineSettings:
        """Change its settings (``boot_order``, ``san_portal``, ``disk``, ``memory_mib``); they
        apply at the next power-on, as a firmware setting does."""
        if "boot_order" in changes:
            changes["boot_order"] = _check_boot_order(changes["boot_order"])
        with self._locked():
            document = self._document()
            settings = attrs.evolve(self.settings, **changes)
            document["settings"] = {**attrs.asdict(settings), "boot_order": list(settings.boot_order)}
            _write_json(self.directory / "machine.json", document)
        return settings

    def set_boot_order(self, order: Sequence[str]) -> None:
        """Its boot order, first device first (names from :data:`BOOT_DEVICES`)."""
        self.configure(boot_order=tuple(order))

    @property
    def console(self) -> Path:
        """The file its serial console is written to (appended across power cycles)."""
        return self.directory / "console.log"

    @property
    def log(self) -> Path:
        """The lab's own notes: what each power-on booted, or why it found nothing."""
        return self.directory / "lab.log"

    def console_text(self) -> str:
        """What its console has shown so far (empty before the first power-on)."""
        return self.console.read_text(errors="replace") if self.console.exists() else ""

    def wait_for_console(self, text: str, timeout: float = 240.0) -> str:
        """Wait until the console shows ``text``; the console's text. Raises
        :class:`LabError` (quoting the console and the lab log) when it never does."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            shown = self.console_text()
            if text in shown:
                return shown
            time.sleep(0.2)  # the console file is the only signal a guest gives
        notes = self.log.read_text(errors="replace") if self.log.exists() else ""
        raise LabError(f"{self.name}: the console never showed {text!r} in {timeout:g} s\n"
                       f"lab log: {notes[-1000:]}\nconsole: {self.console_text()[-2000:]}")

    # -- power -----------------------------------------------------------------------------
    def power_state(self) -> str:
        """``on`` while its QEMU runs, else ``off``."""
        return "on" if self._running() is not None else "off"

    def power_on(self) -> str:
        """Start it: QEMU boots what the boot order names. Already on: nothing changes.
        Returns ``on``. Raises :class:`LabError` when QEMU cannot start."""
        with self._locked():
            if self._running() is None:
                self._start()
        return "on"

    def power_off(self) -> str:
        """Stop it at once (power pulled: QEMU ends). Already off: nothing changes.
        Returns ``off``."""
        with self._locked():
            self._stop()
        return "off"

    def reset(self) -> str:
        """A hard reset: the machine is stopped and started again, its firmware boots anew
        (from what the boot order names now). Off: it is powered on. Returns ``on``."""
        with self._locked():
            self._stop()
            self._start()
        return "on"

    # -- inside ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.directory / "lock", "rb") as handle:  # read-only: any user may lock it
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    def _running(self) -> int | None:
        """The pid of its live QEMU, if any (a pid reused by another process is not it)."""
        try:
            record = json.loads((self.directory / "power.json").read_text())
        except (FileNotFoundError, ValueError):
            return None
        pid, started = record.get("pid"), record.get("started")
        if not pid or not rundir.running(pid, started):
            return None
        return int(pid)

    def _note(self, line: str) -> None:
        with open(self.log, "a", encoding="utf-8") as notes:
            notes.write(f"{time.strftime('%H:%M:%S')} {line}\n")
        self._own(self.log)

    def _own(self, path: Path) -> None:
        """Give a file root made in the folder to the folder's owner (the peer's user, after
        :meth:`Lab.hand_over`), so that user can still write it."""
        if os.geteuid() == 0:
            owner = self.directory.stat()
            with contextlib.suppress(OSError):
                os.chown(path, owner.st_uid, owner.st_gid)

    def _boot_drive(self, settings: MachineSettings, identity: Identity) -> tuple[list[str], str]:
        """QEMU's arguments for the first boot device that resolves, and what it is."""
        for device in settings.boot_order:
            if device == "san":
                if not settings.san_portal:
                    self._note("san: no SAN portal is set; skipped")
                    continue
                url = discover_boot_lun(settings.san_portal, identity.initiator)
                if url is None:
                    self._note(f"san: no LUN is mapped to {identity.initiator} at {settings.san_portal}")
                    continue
                return (["-iscsi", f"initiator-name={identity.initiator}",
                         "-drive", f"file={url},format=raw,if=virtio,cache=none"], f"san {url}")
            if device == "disk" and settings.disk:
                kind = "qcow2" if settings.disk.endswith(".qcow2") else "raw"
                return ["-drive", f"file={settings.disk},format={kind},if=virtio"], f"disk {settings.disk}"
        return [], "no disk"

    def _command(self) -> tuple[list[str], str]:
        qemu = shutil.which("qemu-system-x86_64")
        if qemu is None:
            raise LabError("qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)")
        settings, identity = self.settings, self.identity
        drive, booted = self._boot_drive(settings, identity)
        letters = "".join(dict.fromkeys(_QEMU_BOOT_LETTER[d] for d in settings.boot_order
                                        if d in _QEMU_BOOT_LETTER)) or "c"
        command = [
            qemu, "-name", self.name, "-machine", "accel=tcg", "-m", str(settings.memory_mib),
            "-display", "none", "-monitor", "none", "-nodefaults", "-vga", "none",
            "-uuid", identity.uuid,
            "-smbios", f"type=1,manufacturer={identity.manufacturer},product={identity.product},"
                       f"serial={identity.serial},uuid={identity.uuid}",
            "-chardev", f"file,id=console,path={self.console},append=on", "-serial", "chardev:console",
            # The NIC carries the machine's MAC; user networking reaches no host network.
            "-nic", f"user,model=virtio-net-pci,mac={identity.mac},restrict=on",
            "-boot", f"order={letters}", *drive,
        ]  # fmt: skip
        return command, booted

    def _start(self) -> None:
        command, booted = self._command()
        stderr = self.directory / "qemu.err"
        self.console.touch()
        self._own(self.console)  # QEMU runs as whoever powers it on: the console stays writable
        with open(stderr, "wb") as errors:
            process = _start_helper(command, f"lab machine {self.name} (qemu)", stderr=errors)
        self._own(stderr)
        started = process_start_time(process.pid)
        _write_json(self.directory / "power.json", {"pid": process.pid, "started": started})
        self._note(f"power on: booting {booted} (qemu pid {process.pid})")
        time.sleep(0.2)  # a QEMU refusing its arguments exits at once: say why
        if process.poll() is not None:
            rundir.forget_helper(process.pid)
            said = stderr.read_text(errors="replace").strip().splitlines()
            self._note(f"qemu exited at start: {said[-1] if said else process.returncode}")
            raise LabError(f"lab machine {self.name}: QEMU exited at start: "
                           f"{said[-1] if said else process.returncode}")

    def _stop(self) -> None:
        pid = self._running()
        if pid is not None:
            started = process_start_time(pid)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, 15)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and rundir.running(pid, started):
                time.sleep(0.05)
            if rundir.running(pid, started):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, 9)
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)  # our own child: reap it
            rundir.forget_helper(pid)
            self._note("power off")
        with contextlib.suppress(FileNotFoundError):
            (self.directory / "power.json").unlink()


def _start_helper(command: list[str], what: str, **popen: Any) -> subprocess.Popen:
    """Start QEMU recorded in the run directory; with ``--pdeathsig`` only from the main thread
    (the signal follows the starting *thread*: a request thread of a server ends soon)."""
    if threading.current_thread() is threading.main_thread():
        return rundir.start(command, what, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, **popen)
    process = subprocess.Popen(command, start_new_session=True, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, **popen)
    rundir.record_helper(process.pid, what)
    return process


def _check_boot_order(order: Sequence[str]) -> tuple[str, ...]:
    order = tuple(order)
    unknown = [device for device in order if device not in BOOT_DEVICES]
    if unknown:
        raise LabError(f"unknown boot device {unknown[0]!r}: use {', '.join(BOOT_DEVICES)}")
    return order


class Lab:
    """A folder of lab machines (``DIR/NAME/`` each). Use as a context manager, or call
    :meth:`close`: every machine is powered off at the end."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.directory.chmod(0o755)

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(self, name: str, *, boot_order: Sequence[str] = ("san",), san_portal: str | None = None,
            disk: str | None = None, memory_mib: int = 256, identity: Identity | None = None) -> LabMachine:
        """Make the machine ``name`` (off), or return it as it is when it exists already (its
        identity and settings kept). ``identity`` defaults to :func:`identity_for` ``name``."""
        folder = self.directory / name
        if (folder / "machine.json").exists():
            return LabMachine(folder)
        folder.mkdir(mode=0o755, exist_ok=True)
        (folder / "lock").touch(mode=0o644)
        settings = MachineSettings(_check_boot_order(boot_order), san_portal, disk, memory_mib)
        _write_json(folder / "machine.json", {
            "identity": attrs.asdict(identity or identity_for(name)),
            "settings": {**attrs.asdict(settings), "boot_order": list(settings.boot_order)},
        })
        return LabMachine(folder)

    def machine(self, name: str) -> LabMachine:
        """The machine ``name``; :class:`LabError` when there is none."""
        return LabMachine(self.directory / name)

    def machines(self) -> list[LabMachine]:
        """Every machine of the lab, by name."""
        return [LabMachine(path.parent) for path in sorted(self.directory.glob("*/machine.json"))]

    def hand_over(self, user: str = "nobody") -> None:
        """Let ``user`` (a peer's daemon, snmpd run as ``nobody``) power the machines: their
        folders become its own."""
        entry = pwd.getpwnam(user)
        for path in [self.directory, *self.directory.rglob("*")]:
            os.chown(path, entry.pw_uid, entry.pw_gid, follow_symlinks=False)

    def close(self) -> None:
        """Power every machine off (whoever started it)."""
        for machine in self.machines():
            with contextlib.suppress(OSError, LabError):
                machine.power_off()
