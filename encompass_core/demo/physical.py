"""``encompass demo --physical``: the demo on physical machines of the lab, booting from the SAN.

A plugin's lab peer (``encompass_lab_peers``: the BladeCenter plugin's chassis, snmpd in front of
blades that are QEMU guests) is started with ``count`` machines, behind it a private tgtd serves
the demo's pool over iSCSI (``export = "iscsi"``). The demo master is imported into that pool,
cloned in full (raw volumes: what the export serves), each clone customized, the platform
discovered, and each clone deployed on one machine: the pool maps its volume at LUN 0 to the
machine's initiator, the platform driver sets its boot sequence and powers it on through the
peer, and its firmware boots the LUN. The consoles show each clone's own hostname.

Everything lives in a folder of its own under /var/tmp (the peer's user, ``nobody``, must reach
it) and is stopped and removed at the end, unless ``keep``. Needs root, tgt, QEMU with its iSCSI
driver (``qemu-block-extra``) and a plugin that registers a lab peer.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from ..config import toml_table
from ..context import Context
from ..errors import InvalidInput, NotSupported
from ..operations import deploy as deploy_op
from ..operations import reconcile as reconcile_op
from ..records import LabPeerRecord
from .run import Booted, clean_up, import_demo_master, make_clones, report_consoles, wait_for_consoles

QEMU_ISCSI = Path("/usr/lib/x86_64-linux-gnu/qemu/block-iscsi.so")
CONFIG = """\
# The physical demo's own repository: a local pool served over iSCSI by the demo's private
# tgtd, and the lab platform the demo started (its secrets come from the demo's environment).
[defaults]
pool = "san"

[pools.san]
driver = "local"
path = "san"
export = "iscsi"
tgt_control = {control}
iscsi_portal = "{portal}"
"""


def lab_peers(ctx: Context) -> list[LabPeerRecord]:
    """The lab peers the installed plugins offer."""
    return [record for answer in ctx.host.hook.encompass_lab_peers() for record in (answer or ())]


def choose_peer(peers: list[LabPeerRecord], name: str | None) -> LabPeerRecord:
    """The platform lab peer named ``name`` (the first one offered when ``None``); storage
    peers (``kind`` san or nas, for ``demo --pool``) are not machines."""
    peers = [record for record in peers if record.kind == "platform"]
    if not peers:
        raise NotSupported("encompass demo --physical needs a plugin with a lab peer: "
                           "pip install encompass-bladecenter (or encompass-amt)")
    if name is None:
        return peers[0]
    for record in peers:
        if record.name == name:
            return record
    raise InvalidInput(f"demo --physical: no lab peer named '{name}'; installed: "
                       f"{', '.join(record.name for record in peers)} (encompass demo --help)")


def needs_root(why: str) -> None:
    """A lab started here hands its servers and guests to ``nobody``: root only."""
    if os.geteuid() != 0:
        raise NotSupported(f"{why}: run it as root")


def _check_tools() -> None:
    missing = [tool for tool in ("tgtd", "tgtadm", "qemu-system-x86_64", "iscsi-ls")
               if shutil.which(tool, path="/usr/sbin:/usr/bin:/sbin:/bin") is None]
    if missing or not QEMU_ISCSI.exists():
        raise NotSupported(f"encompass demo --physical needs {', '.join(missing) or 'QEMU iSCSI driver'}: "
                           "apt-get install tgt libiscsi-bin qemu-system-x86 qemu-block-extra")
    needs_root("encompass demo --physical runs tgtd and hands the lab to user nobody")


@contextlib.contextmanager
def environment(variables: dict[str, str]) -> Iterator[None]:
    """The peer's secrets in this process's environment (its platform's ``*_env`` settings)."""
    before = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run_physical_demo(count: int = 3, keep: bool = False, say: Callable[[str], None] = print,
                      timeout: float = 300.0,
                      customize: Callable[[Context, list[str]], None] | None = None,
                      peer_name: str | None = None) -> list[Booted]:
    """Run the demo on ``count`` lab machines of the lab peer ``peer_name`` (default: the first
    one offered); what each console showed."""
    from ..testing.tgt import running_tgtd  # the lab's tgtd helper needs no pytest

    base = Path(tempfile.mkdtemp(prefix="encompass-demo-physical-", dir="/var/tmp"))
    base.chmod(0o755)
    home = base / "home"
    home.mkdir()
    names = [f"demo-{i}" for i in range(1, count + 1)]
    try:
        record = choose_peer(lab_peers(Context(home=home)), peer_name)  # a wrong name: before tools
        _check_tools()
        say(f"demo repository: {home}")
        with running_tgtd(base) as tgtd, record.start(base / "lab", tgtd.portal, count) as peer:
            say(f"started the lab: {record.description} ({peer.name}), a SAN on iSCSI {tgtd.portal}")
            (home / "encompass.toml").write_text(CONFIG.format(control=tgtd.control, portal=tgtd.portal)
                                                 + toml_table(f"platforms.{peer.name}", peer.platform))
            with environment(peer.environment):
                ctx = Context(home=home)
                try:
                    return _run(ctx, peer, names, say, timeout, customize)
                finally:
                    if not keep:
                        clean_up(ctx, names, say, remove_machines=False)
                    with contextlib.suppress(Exception):
                        ctx.platform(peer.name).driver.shutdown()
    finally:
        if keep:
            say(f"kept the repository: ENCOMPASS_HOME={home} (the lab and its SAN are stopped)")
        else:
            shutil.rmtree(base, ignore_errors=True)


def _run(ctx: Context, peer, names: list[str], say: Callable[[str], None], timeout: float,
         customize: Callable[[Context, list[str]], None] | None) -> list[Booted]:
    import_demo_master(ctx, say)
    make_clones(ctx, names, "full", say, customize)  # raw volumes: what the iSCSI export serves
    findings = reconcile_op.reconcile(ctx, peer.name, apply=True)  # records the new machines
    found = sum(finding.subject == "machine" for finding in findings)
    say(f"discovered {found} machines on platform '{peer.name}'")
    deployed = {}
    for name, machine in zip(names, peer.machines, strict=False):
        image = deploy_op.deploy(ctx, name, machine)
        deployed[name] = (image.machine, time.monotonic())
        say(f"deployed {name} on machine '{machine}': its LUN 0 is mapped, it boots from the SAN")
    booted = wait_for_consoles(ctx, deployed, timeout)
    report_consoles(booted, timeout, say)
    return booted
