"""Customizing clones: Encompass against virt-customize doing the same work, in one run.

Both sides set the hostname (``/etc/hostname``) of each of N clones of one small Debian-looking
master (an ext4 volume in a qcow2 overlay): Encompass applies its one item, a ``file`` item on
``/etc/hostname``, in one ``encompass customize --master base --set hostname=... --parallel 1``
command, timed end to end (process start included); virt-customize sets ``--hostname`` on each
clone, one after the other (``LIBGUESTFS_BACKEND=direct``, ``LIBGUESTFS_BACKEND_SETTINGS=force_tcg``).
With ``--parallel P`` both sides also run P clones at once (``--parallel P``; P virt-customize
processes). A warm-up on one clone comes first and is not counted (it compiles Encompass's bytecode
into a private folder, as an installed program has it, and lets libguestfs build its appliance);
then each side runs once per round, in turn, with a new hostname each round so the work is never
skipped as already done. The table gives min/median/max; the target is Encompass >= 200x faster.
virt-customize boots a libguestfs appliance per clone: about 45 s each under TCG here, so the
default (5 clones, 3 rounds) takes about 12 minutes, ``--quick`` about 4.

    .venv/bin/python benchmarks/customize_bench.py [--quick] [--clones N] [--rounds R] [--parallel P]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rounds import Contender, interleave, machine_line, print_table, python_env, timed

ENCOMPASS = Path(sys.executable).with_name("encompass")
TARGET = 200.0


def guest_tree(root: Path) -> None:
    """A small Debian-looking guest that libguestfs inspection recognises."""
    for sub in ("etc/systemd/system", "lib/systemd", "bin", "sbin", "usr/bin", "usr/sbin",
                "usr/local/bin", "usr/local/sbin", "var/log", "tmp", "root"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "etc/hostname").write_text("master\n")
    (root / "etc/hosts").write_text("127.0.0.1\tlocalhost\n127.0.1.1\tmaster\n")
    (root / "etc/os-release").write_text('NAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\n')
    (root / "etc/debian_version").write_text("12.5\n")
    (root / "etc/fstab").write_text("/dev/sda / ext4 defaults 0 1\n")
    shutil.copy("/bin/dash" if Path("/bin/dash").exists() else "/bin/sh", root / "bin/sh")
    shutil.copy("/bin/true", root / "lib/systemd/systemd")


def run(*args, env=None, check=True) -> subprocess.CompletedProcess:
    done = subprocess.run([str(a) for a in args], env=env, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(map(str, args))}\n{done.stderr}")
    return done


class Bench:
    """A master with one hostname item and N clones of it, in a throwaway ENCOMPASS_HOME."""

    def __init__(self, work: Path, clones: int) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ENCOMPASS_")}
        env["ENCOMPASS_HOME"] = str(work / "home")
        self.env = python_env(env, work / "pycache")
        self.vc_env = {**os.environ, "LIBGUESTFS_BACKEND": "direct",
                       "LIBGUESTFS_BACKEND_SETTINGS": "force_tcg"}
        guest_tree(work / "tree")
        run("mke2fs", "-q", "-t", "ext4", "-L", "root", "-d", work / "tree", work / "disk.raw", "256M")
        run("qemu-img", "convert", "-O", "qcow2", work / "disk.raw", work / "master.qcow2")
        self.cli("init")
        self.cli("master", "import", "base", work / "master.qcow2")
        self.cli("master", "items", "add", "base", "hostname", "--type", "file", "--path",
                 "/etc/hostname")
        self.cli("clone", "base", "--count", clones, "--prefix", "node")
        self.names = [f"node{i}" for i in range(1, clones + 1)]
        self.locations = {n: json.loads(self.cli("image", "show", n, "--json").stdout)
                          ["volumes"][0]["location"] for n in self.names}

    def cli(self, *args: object) -> subprocess.CompletedProcess:
        return run(ENCOMPASS, *args, env=self.env)

    def check(self, hostname: str, names: list[str] | None = None) -> None:
        """Every clone's /etc/hostname reads ``hostname`` ({clone}: its name), or stop."""
        for name in names or self.names:
            got = self.cli("image", "cat", name, "/etc/hostname").stdout.strip()
            if got != hostname.format(clone=name):
                raise SystemExit(f"customize_bench: {name} has hostname {got!r}, not "
                                 f"{hostname.format(clone=name)!r}")

    def encompass(self, parallel: int, tag: str) -> Contender:
        def once(round_: int) -> float:
            hostname = f"{tag}{round_}-{{clone}}"
            seconds = timed(lambda: self.cli("customize", "--master", "base", "--set",
                                             f"hostname={hostname}", "--parallel", parallel))
            self.check(hostname)
            return seconds
        return Contender(f"encompass customize --parallel {parallel}", once)

    def virt_customize_one(self, name: str, hostname: str) -> subprocess.CompletedProcess:
        return run("virt-customize", "-q", "-a", self.locations[name], "--hostname", hostname,
                   env=self.vc_env, check=False)

    def virt_customize(self, parallel: int, tag: str) -> Contender:
        def one(name: str, hostname: str) -> None:
            done = self.virt_customize_one(name, hostname.format(clone=name))
            if done.returncode != 0:
                raise SystemExit(f"customize_bench: virt-customize {name} failed: {done.stderr}")

        def once(round_: int) -> float:
            hostname = f"{tag}{round_}-{{clone}}"
            with ThreadPoolExecutor(parallel) as pool:
                seconds = timed(lambda: list(pool.map(lambda n: one(n, hostname), self.names)))
            self.check(hostname)
            return seconds
        how = "one after the other" if parallel == 1 else f"{parallel} at once"
        return Contender(f"virt-customize --hostname, {how}", once)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="2 clones, 2 rounds (unless given): about 4 minutes under TCG")
    parser.add_argument("--clones", type=int, help="clones customized per round (default 5)")
    parser.add_argument("--rounds", type=int, help="rounds of each side (default 3)")
    parser.add_argument("--parallel", type=int, default=1,
                        help="also run both sides with P clones at once (default 1: serial only)")
    parser.add_argument("--skip-virt-customize", action="store_true")
    args = parser.parse_args()
    clones = args.clones if args.clones is not None else (2 if args.quick else 5)
    rounds = args.rounds if args.rounds is not None else (2 if args.quick else 3)
    if clones < 1 or rounds < 1 or args.parallel < 1:
        parser.error("--clones, --rounds and --parallel must be at least 1")

    work = Path(tempfile.mkdtemp(prefix="encompass-bench-", dir="/var/tmp"))
    try:
        bench = Bench(work, clones)
        with_vc = not args.skip_virt_customize
        if with_vc and shutil.which("virt-customize") is None:
            print("virt-customize: not installed here (apt-get install libguestfs-tools); no comparison")
            with_vc = False
        # Warm-up, not counted: Encompass's bytecode, libguestfs's appliance.
        bench.cli("customize", bench.names[0], "--set", "hostname=warm")
        if with_vc:
            done = bench.virt_customize_one(bench.names[0], "warm")
            if done.returncode != 0:
                print(f"virt-customize: cannot run here: {done.stderr.strip().splitlines()[-1:]}")
                with_vc = False
        case = f"{clones} clones, serial"
        contenders = [bench.encompass(1, "e")] + ([bench.virt_customize(1, "v")] if with_vc else [])
        results = interleave(case, contenders, rounds)
        reference = {case: contenders[0].name}
        if args.parallel > 1:
            case = f"{clones} clones, {args.parallel} at once"
            contenders = [bench.encompass(args.parallel, "ep")] + (
                [bench.virt_customize(args.parallel, "vp")] if with_vc else [])
            results += interleave(case, contenders, rounds)
            reference[case] = contenders[0].name
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"\nEach round sets /etc/hostname on {clones} clones; {rounds} rounds, interleaved.")
    print_table(results, reference)
    print()
    for ours, theirs in zip(results[::2], results[1::2], strict=True) if with_vc else ():
        speedup = theirs.median / ours.median
        print(f"{ours.case}: encompass {ours.median / clones * 1000:.0f} ms per clone, virt-customize "
              f"{theirs.median / clones:.1f} s per clone: {speedup:.0f}x faster "
              f"(target >= {TARGET:.0f}x: {'met' if speedup >= TARGET else 'MISSED'})")
    print(f"ratio: median seconds / those of Encompass in the same case; {machine_line()}.")


if __name__ == "__main__":
    main()
