"""The demo scenario: build → import → clone ×3 → customize → deploy → boot → read the consoles.

Everything happens in a repository of its own (a fresh ``ENCOMPASS_HOME``), with a platform
``kvm`` whose libvirt daemon the driver starts privately (``uri = "private"``), so the demo
needs no system service. Software emulation is used where KVM is unusable.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import attrs

from ..context import Context
from ..errors import DriverError, EncompassError
from ..model import HardwareProfile, SoftwareProfile
from ..operations import clone as clone_op
from ..operations import delete as delete_op
from ..operations import deploy as deploy_op
from ..operations import importing
from ..operations import machines as machines_op
from .guest import BUILD_VERSION, build_demo_master

CONSOLE_LINE = re.compile(r"encompass-demo: hostname (\S+)")
BOOT_LINE = re.compile(r"demo-bootscript: (.+)")

DEMO_CONFIG = """\
# The demo's own repository: a local pool and a KVM/QEMU platform served by a private
# libvirt daemon that the kvm driver starts (and the demo stops).
[defaults]
pool = "local"

[pools.local]
driver = "local"
path = "pool"

[platforms.kvm]
driver = "kvm"
uri = "private"
"""

@attrs.frozen
class Booted:
    """What one clone's console showed."""

    clone: str
    machine: str
    console: str | None  # the hostname line, or None when it never came
    bootscript: str | None
    log: str | None
    seconds: float


def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "encompass" / "demo"


def make_home(home: Path | None) -> Path:
    """The demo's ENCOMPASS_HOME: given, or a new folder the hypervisor's user can reach."""
    if home is None:
        base = Path("/var/tmp") if os.access("/var/tmp", os.W_OK) else None
        home = Path(tempfile.mkdtemp(prefix="encompass-demo-", dir=base))
    home.mkdir(parents=True, exist_ok=True)
    home.chmod(0o755)  # a private libvirt daemon may run QEMU as another user
    config = home / "encompass.toml"
    if not config.exists():
        config.write_text(DEMO_CONFIG)
    return home


def run_demo(
    home: Path | None = None,
    count: int = 3,
    keep: bool = False,
    say: Callable[[str], None] = print,
    timeout: float = 300.0,
    customize: Callable[[Context, list[str]], None] | None = None,
) -> list[Booted]:
    """Run the whole demo; return what each clone's console showed.

    A repository the demo made itself is removed at the end (unless ``keep``); a given ``home``
    is emptied of the demo's images and machines, and stays.
    """
    made_home = home is None
    home = make_home(home)
    ctx = Context(home=home)
    say(f"demo repository: {home}")
    names = [f"demo-{i}" for i in range(1, count + 1)]
    try:
        import_demo_master(ctx, say)
        make_clones(ctx, names, "cow", say, customize)
        return deploy_on_new_machines(ctx, names, say, timeout, "booting")
    finally:
        if not keep:
            clean_up(ctx, names, say)
        stop_platform(ctx, say)
        if made_home and not keep:
            shutil.rmtree(home, ignore_errors=True)
        if keep:
            say(f"kept everything: ENCOMPASS_HOME={home} encompass image tree")


def import_demo_master(ctx: Context, say: Callable[[str], None]) -> None:
    """Build the demo master (once per user, cached) and import it as 'demo' into the default
    pool, unless it is there already."""
    started = time.monotonic()
    # Built once per user and kept with the downloaded packages: the pool gets a copy.
    built = build_demo_master(default_cache() / f"master-v{BUILD_VERSION}", default_cache(),
                              progress=say)
    say(f"a bootable master built from Debian packages (kernel {built.kernel_release}, "
        f"syslinux on partition 1, root on partition {built.root_partition}): "
        f"{built.disk} ({time.monotonic() - started:.1f} s)")
    with ctx.store.snapshot() as tx:
        exists = tx.find_image("demo") is not None
    if not exists:
        importing.import_master(
            ctx, "demo", [built.disk],
            hardware=HardwareProfile(memory_mib=256, cpus=1),
            # No kernel in the profile: the machine's firmware boots the disk (syslinux).
            software=SoftwareProfile(os="busybox", description="Encompass demo guest"),
        )
        say("imported master 'demo' (version 1)")


def make_clones(ctx: Context, names: list[str], mode: str, say: Callable[[str], None],
                customize: Callable[[Context, list[str]], None] | None) -> None:
    """Clone master 'demo' as ``names`` (``cow`` or ``full``), then customize them."""
    started = time.monotonic()
    results = clone_op.clone_images(ctx, "demo", names, mode=mode)
    failed = [r for r in results if r.state != "ready"]
    if failed:
        raise DriverError(f"cloning failed: {failed[0].name}: {failed[0].error}")
    kind = "copy-on-write" if mode == "cow" else "full"
    say(f"made {len(names)} {kind} clones ({', '.join(names)}) in {time.monotonic() - started:.2f} s")
    if customize is not None:
        started = time.monotonic()
        customize(ctx, names)
        say(f"customized each clone (hostname + a bootscript) in {time.monotonic() - started:.2f} s")


def report_consoles(booted: list[Booted], timeout: float, say: Callable[[str], None]) -> None:
    """Say what each clone's console showed."""
    for result in booted:
        if result.console:
            say(f"{result.clone}: console says '{result.console}' after {result.seconds:.1f} s")
            if result.bootscript:
                say(f"{result.clone}: console says '{result.bootscript}'")
        else:
            say(f"{result.clone}: no hostname line on the console within {timeout:.0f} s "
                f"(log: {result.log})")


def wait_for_consoles(ctx: Context, deployed: dict[str, tuple[str, float]], timeout: float) -> list[Booted]:
    """Poll each machine's console log until its hostname line shows (bounded by ``timeout``)."""
    logs = {}
    for name, (machine_name, _start) in deployed.items():
        machine = machines_op.machine(ctx, machine_name)
        logs[name] = ctx.platform(machine.platform).driver.console_log(machine)
    found: dict[str, Booted] = {}
    deadline = time.monotonic() + timeout
    delay = 0.1
    while len(found) < len(deployed) and time.monotonic() < deadline:
        for name, (machine_name, start) in deployed.items():
            if name in found or logs[name] is None:
                continue
            text = _read(logs[name])
            line = CONSOLE_LINE.search(text)
            if line:
                script = BOOT_LINE.search(text)
                if "encompass-demo: powering off" in text or time.monotonic() - start > 60:
                    found[name] = Booted(name, machine_name, line.group(0),
                                         script.group(0) if script else None, str(logs[name]),
                                         time.monotonic() - start)
        time.sleep(delay)
        delay = min(delay * 1.5, 1.0)
    return [found.get(name) or Booted(name, m, None, None, str(logs[name]), timeout)
            for name, (m, _s) in deployed.items()]


def _read(path) -> str:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""


def clean_up(ctx: Context, names: list[str], say: Callable[[str], None],
             remove_machines: bool = True) -> None:
    """Undeploy and delete the demo's clones and its master (and the machines made for them)."""
    for name in names:
        try:
            with ctx.store.snapshot() as tx:
                image = tx.find_image(name)
            if image is None:
                continue
            if image.state == "deployed":
                deploy_op.undeploy(ctx, name, remove_machine=remove_machines)
            delete_op.delete_image(ctx, name)
        except EncompassError as exc:
            say(f"could not clean up {name}: {exc}")
    try:
        delete_op.delete_image(ctx, "demo")
    except EncompassError as exc:
        say(f"could not delete the demo master: {exc}")
    say("undeployed and deleted the clones and the master")


def deploy_on_new_machines(ctx: Context, names: list[str], say: Callable[[str], None], timeout: float,
                           boots: str) -> list[Booted]:
    """Deploy each clone on a new machine of platform ``kvm``, then wait for and report what each
    console shows; ``boots`` says how (for the progress lines)."""
    deployed = {}
    for name in names:
        image = deploy_op.deploy(ctx, name, new=True, platform="kvm")
        deployed[name] = (image.machine, time.monotonic())
        say(f"deployed {name} on a new virtual machine '{image.machine}': {boots}")
    booted = wait_for_consoles(ctx, deployed, timeout)
    report_consoles(booted, timeout, say)
    return booted


def stop_platform(ctx: Context, say: Callable[[str], None]) -> None:
    """Let the driver stop what it started for the demo (a private libvirt daemon)."""
    try:
        ctx.platform("kvm").driver.shutdown()
    except EncompassError as exc:
        say(f"could not stop the demo's platform: {exc}")
