"""How much time Encompass adds to booting a guest: ``encompass deploy`` vs ``virsh create``.

Both boot the demo master (a copy-on-write clone of it, the same kernel, initramfs and command
line, the same domain shape) under QEMU through one private libvirt daemon. Each run times from
the moment the command starts to the guest's first line on its serial console, then waits for
the guest to power itself off. Encompass's side includes everything ``encompass deploy --new``
does: start the CLI, load plugins, lock the clone, attach its volume, define a machine, read the
kernel out of the clone, redefine and boot. Target: Encompass adds at most 1 s.

A warm-up round of each comes first and is not counted; every Python subprocess runs from
bytecode compiled into a private folder (PYTHONPYCACHEPREFIX), reused from its second run on, as
an installed program has it. Each round boots one guest each way, the order alternating from
round to round so neither always meets a warmer cache; the table gives min/median/max, and
what Encompass adds is the median of the rounds' differences.

    .venv/bin/python benchmarks/deploy_bench.py [--quick] [-n 5] [--cache DIR] [--keep]
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
from rounds import Result, machine_line, print_table, python_env

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
        env = python_env(env, base / "pycache")
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
        for run in range(runs + 1):  # run 0 is the warm-up, not counted
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
            if run:
                timings.append((encompass, virsh))
            label = f"run {run}" if run else "warm-up (not counted)"
            print(f"{label}: first console line after encompass deploy {encompass[1]:.2f} s, "
                  f"after virsh create {virsh[1]:.2f} s", flush=True)
        connection.close()
        return timings
    finally:
        daemon.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, help="counted runs of each (default 5)")
    parser.add_argument("--quick", action="store_true", help="2 counted runs (unless -n is given)")
    parser.add_argument("--cache", type=Path, default=Path("/var/tmp/encompass-test-cache"),
                        help="where the demo master and its packages are kept between runs")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    runs = args.runs if args.runs is not None else (2 if args.quick else 5)
    if runs < 1:
        parser.error("--runs must be at least 1")
    libvirt.registerErrorHandler(lambda _context, _error: None, None)
    # The daemon may run as nobody (under root): everything must be reachable by others.
    base = Path(tempfile.mkdtemp(prefix="encompass-deploy-bench-", dir="/var/tmp"))
    base.chmod(0o755)
    try:
        timings = bench(runs, base, args.cache)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    cases = ("to the command's return", "to the first console line")
    results, added = [], []
    for measure, case in enumerate(cases):
        results += [Result(case, "encompass deploy --new", tuple(e[measure] for e, _ in timings)),
                    Result(case, "virsh create", tuple(v[measure] for _, v in timings))]
        # Rounds are paired (same moment, same load): what Encompass adds is their difference.
        added.append(sorted(e[measure] - v[measure] for e, v in timings))
    print(f"\nseconds from the command's start; {runs} runs each after a warm-up, interleaved")
    print_table(results, {case: "virsh create" for case in cases})
    print()
    for case, differences in zip(cases, added, strict=True):
        print(f"{case}, encompass adds: min {differences[0]:.2f} s, median "
              f"{statistics.median(differences):.2f} s, max {differences[-1]:.2f} s")
    first_line = statistics.median(added[1])
    verdict = "met" if first_line <= TARGET_SECONDS else "MISSED"
    print(f"to the first console line Encompass adds {first_line:.2f} s (median of the rounds' "
          f"differences; target <= {TARGET_SECONDS:.0f} s: {verdict}); {machine_line()}.")
    return 0 if first_line <= TARGET_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
