"""How much time Encompass adds to booting a guest: ``encompass deploy`` vs ``virsh create``.

Both boot the demo master (a copy-on-write clone of it, the same kernel, initramfs and command
line, the same domain shape) under QEMU through one private libvirt daemon. Each run times from
the moment the command starts to the guest's first line on its serial console, then waits for
the guest to power itself off. Encompass's side includes everything ``encompass deploy --new``
does: start the CLI, load plugins, lock the clone, attach its volume, define a machine, read the
kernel out of the clone, redefine and boot. Target: Encompass adds at most 1 s.

    .venv/bin/python benchmarks/deploy_bench.py [-n 3] [--cache DIR] [--keep]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import libvirt
from encompass_libvirt.daemon import PrivateDaemon, start_private_daemon
from encompass_libvirt.domxml import kvm_domain_xml

from encompass_core.demo.guest import build_demo_master

ENCOMPASS = Path(sys.executable).with_name("encompass")
TARGET_SECONDS = 1.0
TIMEOUT = 120.0


def first_line_after(command: list[str], log: Path, env: dict[str, str] | None = None
                     ) -> tuple[float, float]:
    """Run ``command``; seconds from its start to its return, and to the first line in ``log``."""
    log.unlink(missing_ok=True)  # QEMU creates it, as the daemon's user
    started = time.monotonic()
    returned = None
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True)
    while time.monotonic() - started < TIMEOUT:
        try:
            if b"\n" in log.read_bytes().lstrip():
                seconds = time.monotonic() - started
                break
        except FileNotFoundError:
            pass
        status = process.poll()
        if status not in (None, 0):
            raise SystemExit(f"{' '.join(command)} failed: {process.stderr.read()}")
        if status == 0 and returned is None:
            returned = time.monotonic() - started
        time.sleep(0.005)
    else:
        raise SystemExit(f"no console line in {log} within {TIMEOUT:.0f} s")
    if process.wait() != 0:
        raise SystemExit(f"{' '.join(command)} failed: {process.stderr.read()}")
    return (returned if returned is not None else time.monotonic() - started), seconds


def wait_until_off(connection: libvirt.virConnect, name: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        try:
            if not connection.lookupByName(name).isActive():
                return
        except libvirt.libvirtError:
            return  # a transient domain is gone once it is off
        time.sleep(0.05)
    raise SystemExit(f"guest {name} did not power off within {TIMEOUT:.0f} s")


def run_cli(env: dict[str, str], *args: object) -> None:
    done = subprocess.run([str(ENCOMPASS), *map(str, args)], env=env, capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        raise SystemExit(f"encompass {' '.join(map(str, args))}: {done.stderr.strip()}")


Timing = tuple[float, float]  # (command returned, first console line), seconds from its start


def bench(runs: int, base: Path, cache: Path) -> list[tuple[Timing, Timing]]:
    master = build_demo_master(cache / "demo-master", cache / "packages", progress=print)
    daemon: PrivateDaemon = start_private_daemon(base / "libvirt")
    try:
        home = base / "home"
        env = {k: v for k, v in os.environ.items() if not k.startswith("ENCOMPASS_")}
        env.update(ENCOMPASS_HOME=str(home), XDG_CACHE_HOME=str(base / "xdg-cache"))
        run_cli(env, "init")
        with open(home / "encompass.toml", "a", encoding="utf-8") as config:
            config.write(f'\n[platforms.kvm]\ndriver = "kvm"\nuri = "private"\n'
                         f'private_dir = "{daemon.dirs.base}"\ndomain_type = "qemu"\n'
                         "shutdown_timeout = 0\n")
        home.chmod(0o755)
        run_cli(env, "master", "import", "demo", master.disk, "--hw", "memory=256M",
                "--sw", "kernel=/boot/vmlinuz", "--sw", "initrd=/boot/initrd.img",
                "--sw", f"cmdline={master.cmdline}")
        connection = libvirt.open(daemon.uri)

        # The bare path: the same kind of clone and domain, made by hand once.
        bare = daemon.dirs.guests / "bare"
        bare.mkdir(exist_ok=True)
        daemon.grant(bare)
        for source in (master.kernel, master.initrd):
            shutil.copy(source, bare / source.name)
            daemon.grant(bare / source.name, writable=False)
        daemon.grant(master.disk, writable=False)
        timings = []
        for run in range(1, runs + 1):
            name = f"bench{run}"
            run_cli(env, "clone", "demo", name)
            disk = bare / f"virsh{run}.qcow2"
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b",
                            str(master.disk), str(disk)], check=True)
            daemon.grant(disk)
            console = bare / f"virsh{run}.log"
            xml = bare / f"virsh{run}.xml"
            xml.write_text(kvm_domain_xml(f"virsh{run}", 256, 1, [(disk, "qcow2")],
                                          bare / master.kernel.name, bare / master.initrd.name,
                                          master.cmdline, console, domain_type="qemu"))

            def encompass_run(name: str = name) -> Timing:
                seconds = first_line_after(
                    [str(ENCOMPASS), "deploy", name, "--new", "--platform", "kvm"],
                    daemon.dirs.guests / name / "console.log", env)
                wait_until_off(connection, name)
                run_cli(env, "undeploy", name, "--remove-machine")
                return seconds

            def virsh_run(run: int = run, xml: Path = xml, console: Path = console) -> Timing:
                seconds = first_line_after(["virsh", "-q", "-c", daemon.uri, "create", str(xml)],
                                           console)
                wait_until_off(connection, f"virsh{run}")
                return seconds

            # Alternate which goes first, so neither always meets a warmer cache.
            if run % 2:
                encompass, virsh = encompass_run(), virsh_run()
            else:
                virsh, encompass = virsh_run(), encompass_run()
            timings.append((encompass, virsh))
            print(f"run {run}: first console line after encompass deploy {encompass[1]:.2f} s, "
                  f"after virsh create {virsh[1]:.2f} s", flush=True)
        connection.close()
        return timings
    finally:
        daemon.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=3, help="runs of each (default 3)")
    parser.add_argument("--cache", type=Path, default=Path("/var/tmp/encompass-test-cache"),
                        help="where the demo master and its packages are kept between runs")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    libvirt.registerErrorHandler(lambda _context, _error: None, None)
    # The daemon may run as nobody (under root): everything must be reachable by others.
    base = Path(tempfile.mkdtemp(prefix="encompass-deploy-bench-", dir="/var/tmp"))
    base.chmod(0o755)
    try:
        timings = bench(args.runs, base, args.cache)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    print()
    print("seconds from the command's start: to its return | to the guest's first console line")
    print(f"{'run':>5}  {'encompass':>9} {'virsh':>6} {'added':>6}  |  {'encompass':>9} {'virsh':>6} "
          f"{'added':>6}")
    rows = [(e[0], v[0], e[1], v[1]) for e, v in timings]
    for run, (er, vr, ef, vf) in enumerate(rows, 1):
        print(f"{run:>5}  {er:>9.2f} {vr:>6.2f} {er - vr:>6.2f}  |  {ef:>9.2f} {vf:>6.2f} {ef - vf:>6.2f}")
    # Runs are paired (same moment, same load): the median of the per-run differences.
    med = [statistics.median(r[i] for r in rows) for i in range(4)]
    added_return = statistics.median(r[0] - r[1] for r in rows)
    added = statistics.median(r[2] - r[3] for r in rows)
    print(f"{'med.':>5}  {med[0]:>9.2f} {med[1]:>6.2f} {added_return:>6.2f}  |  {med[2]:>9.2f} "
          f"{med[3]:>6.2f} {added:>6.2f}")
    verdict = "met" if added <= TARGET_SECONDS else "MISSED"
    print(f"\nto the first console line, Encompass adds {added:.2f} s (median of the differences; "
          f"target <= {TARGET_SECONDS:.0f} s: {verdict}); to the command's return {added_return:.2f} s")
    return 0 if added <= TARGET_SECONDS else 1

if __name__ == "__main__":
    sys.exit(main())
