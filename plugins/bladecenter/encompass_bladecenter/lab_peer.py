"""A lab chassis to test against: net-snmp ``snmpd`` on 127.0.0.1 (a free port), run as
``nobody``, with :mod:`.lab_agent` behind ``pass_persist`` holding a 14-slot chassis whose blades
are lab machines (QEMU guests, :mod:`encompass_core.testing.lab`) that boot their SAN LUN 0.

``with running_chassis(workdir, san_portal=tgtd.portal, slots=(1, 2, 3)) as chassis:`` yields a
:class:`LabChassis`; :meth:`LabChassis.platform_table` is the ``[platforms.NAME]`` table that
reaches it (the community is read from an environment variable the caller sets from
:attr:`LabChassis.community`; it is never written into the table, a log or an argument list).
At the end snmpd stops, its ``pass_persist`` program ends with it, and every blade is powered off.
Offered to the core (``encompass demo --physical``) through the ``encompass_lab_peers`` hook.
Needs root (it hands the lab over to ``nobody``), Debian ``snmpd``, QEMU and ``setpriv``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs

from encompass_core import rundir
from encompass_core.records import LabPeer
from encompass_core.testing.lab import Lab, LabMachine, identity_for

from . import oids

#: The initiator names of lab blades: the firmware's convention, made from the blade's serial.
INITIATOR_FORMAT = "iqn.2026-12.org.encompass.lab:{serial}"
#: The SNMP user and protocols of the lab chassis' SNMPv3 access.
V3_USER = "encompass"
START_TIMEOUT = 20.0
#: The memory of each lab blade (a QEMU guest).
BLADE_MEMORY_MIB = 256


class ChassisError(RuntimeError):
    """The lab chassis could not start."""


@attrs.frozen(repr=False)
class LabChassis:
    """A running lab chassis: where its MM answers, its secrets, its blades."""

    name: str
    address: str
    port: int
    community: str
    auth_password: str
    priv_password: str
    directory: Path
    lab: Lab
    slots: tuple[int, ...]

    def __repr__(self) -> str:
        return f"LabChassis({self.name!r}, {self.address}:{self.port}, slots={self.slots})"

    def blade(self, slot: int) -> LabMachine:
        """The lab machine in ``slot``."""
        return self.lab.machine(blade_folder(self.name, slot))

    def console_log_format(self) -> str:
        """Where the blades' consoles are captured, as the driver's ``console_log`` setting."""
        return str(self.lab.directory / f"{self.name}-blade{{slot}}" / "console.log")

    def platform_table(self, community_env: str | None = None, **more: Any) -> dict[str, Any]:
        """The ``[platforms.NAME]`` settings reaching this chassis (SNMPv2c, the community read
        from ``community_env``), the blades' initiator names and console logs included."""
        table = {"driver": "bladecenter", "address": self.address, "port": self.port,
                 "iscsi_initiator_format": INITIATOR_FORMAT, "console_log": self.console_log_format(),
                 "timeout": 5.0, "retries": 1, "memory_mib": BLADE_MEMORY_MIB, "cpus": 1}
        if community_env:
            table["community_env"] = community_env
        table.update(more)
        return table

    def agent_log(self) -> str:
        """What the chassis' agent did (power, restart, boot sequence), for failing tests."""
        path = self.directory / "agent.log"
        return path.read_text(errors="replace") if path.exists() else ""


def blade_folder(chassis: str, slot: int) -> str:
    """The lab machine folder of a blade."""
    return f"{chassis}-blade{slot}"


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _others_can_reach(path: str) -> bool:
    """Whether a user other than the owner may traverse to ``path`` (every folder o+x)."""
    current = Path(path).resolve()
    return all(os.stat(folder).st_mode & 0o001 for folder in [*reversed(current.parents), current]
               if folder.is_dir())


def _interpreter() -> str:
    """A Python of this version that the agent's user can run: this one, unless it lives in a
    private folder (a pyenv under /root), then the system's of the same version."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (sys.executable, f"/usr/bin/{version}", f"/usr/local/bin/{version}"):
        library = os.path.dirname(os.__file__) if candidate == sys.executable else "/usr"
        if os.path.exists(candidate) and _others_can_reach(os.path.realpath(candidate)) \
                and _others_can_reach(library):
            return candidate
    raise ChassisError(f"no {version} that user nobody can run: {sys.executable} lives in a private "
                       f"folder; install Debian's {version}")


def _agent_script(directory: Path) -> Path:
    """The program snmpd runs: a Python the agent's user can run, the packages' paths (those
    it can read), the chassis folder."""
    import encompass_core

    # The packages' own folders first: an editable install reaches them through an import hook
    # that a bare PYTHONPATH does not carry.
    own = [str(Path(package.__file__).resolve().parent.parent)
           for package in (encompass_core, sys.modules[__package__])]
    paths = [path for path in dict.fromkeys([*own, *sys.path])
             if path and os.path.isdir(path) and _others_can_reach(path)]
    script = directory / "agent.sh"
    script.write_text("#!/bin/sh\n"
                      f"export PYTHONPATH='{os.pathsep.join(paths)}'\n"
                      f"exec '{_interpreter()}' -m encompass_bladecenter.lab_agent '{directory}' "
                      f"2>>'{directory / 'agent.err'}'\n")
    script.chmod(0o755)
    return script


def _snmpd_config(directory: Path, port: int, community: str, auth: str, priv: str) -> Path:
    config = directory / "snmpd.conf"
    # The file holds the lab's secrets: only its owner (nobody, snmpd) reads it.
    fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(f"agentAddress udp:127.0.0.1:{port}\n"
                  f"rwcommunity {community} 127.0.0.1\n"
                  f"createUser {V3_USER} SHA \"{auth}\" AES \"{priv}\"\n"
                  f"rwuser {V3_USER} priv\n"
                  f"pass_persist .{oids.dotted(oids.BLADE_CENTER)} {_agent_script(directory)}\n")
    return config


@contextlib.contextmanager
def running_chassis(workdir: Path, san_portal: str | None, slots: Sequence[int] = (1, 2, 3),
                    name: str = "chassis1", user: str = "nobody") -> Iterator[LabChassis]:
    """Start a lab chassis whose ``slots`` hold blades booting LUN 0 from ``san_portal``."""
    snmpd = shutil.which("snmpd", path="/usr/sbin:/usr/bin:/sbin")
    if snmpd is None:
        raise ChassisError("snmpd is not installed (apt-get install snmpd)")
    workdir.mkdir(parents=True, exist_ok=True)
    workdir.chmod(0o755)
    directory = workdir / f"{name}-mm"
    directory.mkdir(mode=0o755, exist_ok=True)
    (directory / "persist").mkdir(mode=0o700, exist_ok=True)
    lab = Lab(workdir / "lab")
    state = {"name": name, "slots": {}}
    for slot in slots:
        identity = identity_for(blade_folder(name, slot))
        identity = attrs.evolve(identity, initiator=INITIATOR_FORMAT.format(serial=identity.serial.lower()))
        machine = lab.add(blade_folder(name, slot), boot_order=("san", "network"), san_portal=san_portal,
                          identity=identity, memory_mib=BLADE_MEMORY_MIB)
        state["slots"][str(slot)] = {"machine": str(machine.directory), "name": f"blade{slot}",
                                     "boot": [3, 7, 0, 0]}
    (directory / "chassis.json").write_text(json.dumps(state, indent=2))
    port = _free_udp_port()
    community, auth, priv = (secrets.token_hex(8) for _ in range(3))
    config = _snmpd_config(directory, port, community, auth, priv)
    entry = pwd.getpwnam(user)
    for path in [directory, *directory.rglob("*")]:
        os.chown(path, entry.pw_uid, entry.pw_gid)
    lab.hand_over(user)
    environment = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "MIBS": "",
                   "HOME": str(directory), "SNMP_PERSISTENT_DIR": str(directory / "persist")}
    command = [shutil.which("setpriv") or "setpriv", f"--reuid={user}", f"--regid={entry.pw_gid}",
               "--clear-groups", "--", snmpd, "-f", "-C", "-c", str(config), "-Lf",
               str(directory / "snmpd.log")]
    daemon = rundir.start(command, f"lab chassis {name} (snmpd)", env=environment,
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    chassis = LabChassis(name, "127.0.0.1", port, community, auth, priv, directory, lab, tuple(slots))
    try:
        _wait_until_answering(chassis, daemon)
        yield chassis
    finally:
        rundir.stop(daemon)
        lab.close()


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-800:] if path.exists() else ""


def _wait_until_answering(chassis: LabChassis, daemon: Any) -> None:
    from .snmp import Credentials, SnmpSession, Target

    async def ask() -> None:
        target = Target(chassis.name, chassis.address, chassis.port, timeout=0.5, retries=0)
        async with SnmpSession(target, Credentials("2c", community=chassis.community)) as session:
            await session.get([(*oids.BLADE_EXISTS, 1)])

    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if daemon.poll() is not None:
            raise ChassisError(f"snmpd exited at start: {_tail(chassis.directory / 'snmpd.log')}")
        try:
            asyncio.run(ask())
            return
        except Exception as error:  # not answering yet
            if time.monotonic() > deadline:
                raise ChassisError(
                    f"the lab chassis did not answer on port {chassis.port} in {START_TIMEOUT:g} s "
                    f"({error}); snmpd said: {_tail(chassis.directory / 'snmpd.log')}; the agent "
                    f"said: {chassis.agent_log()[-800:]} {_tail(chassis.directory / 'agent.err')}") from None
            time.sleep(0.2)


@contextlib.contextmanager
def lab_peer(workdir: Path, san_portal: str | None, count: int) -> Iterator[LabPeer]:
    """The ``encompass_lab_peers`` start function: a chassis with blades in slots 1..count."""
    if not 1 <= count <= len(oids.SLOTS):
        raise ChassisError(f"a chassis holds 1 to {len(oids.SLOTS)} blades, not {count}")
    with running_chassis(Path(workdir), san_portal, slots=tuple(range(1, count + 1))) as chassis:
        variable = f"ENCOMPASS_LAB_{chassis.name.upper()}_COMMUNITY"
        yield LabPeer(name=chassis.name, platform=chassis.platform_table(variable),
                      machines=tuple(f"{chassis.name}-blade{slot}" for slot in chassis.slots),
                      environment={variable: chassis.community})
