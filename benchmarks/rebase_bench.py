"""Rebasing customized clones onto a new master version, against making them again, in one run.

N copy-on-write clones of a small master (an ext4 volume in a qcow2 file) carry three items:
``hostname`` and ``motd`` (``file`` items, their values recorded) and ``rootpw`` (a secret
``file`` item, given again from a values file: secrets are never stored). Each round first
makes a new master version (``master update base --import``, not counted), then:

- ``encompass rebase --all-outdated base --values secrets.toml --parallel P``: every clone
  rebuilt on the new version with its recorded inputs (one command, timed end to end);
- ``encompass clone base --count N`` + ``encompass customize ... --set hostname={clone} --set
  motd=... --values secrets.toml --parallel P``: as many new clones customized from scratch with
  the same inputs (two commands, both timed).

Not counted: the old volumes of the rebased clones are discarded (``rebase --discard-old``) and
the new clones deleted after each round. A warm-up compiles Encompass's bytecode into a private
folder first (as an installed program has it). Target: rebase <= 1.2x clone + customize.

    .venv/bin/python benchmarks/rebase_bench.py [--quick] [--clones N] [--rounds R] [--parallel P]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from rounds import Contender, interleave, machine_line, print_table, python_env, timed

ENCOMPASS = Path(sys.executable).with_name("encompass")
TARGET = 1.2


def run(*args, env=None) -> subprocess.CompletedProcess:
    done = subprocess.run([str(a) for a in args], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"rebase_bench: failed: {' '.join(map(str, args))}\n{done.stderr}")
    return done


class Bench:
    """Master 'base' with three items and N customized clones, in a throwaway ENCOMPASS_HOME."""

    def __init__(self, work: Path, clones: int, parallel: int) -> None:
        self.work, self.count, self.parallel = work, clones, parallel
        env = {k: v for k, v in os.environ.items() if not k.startswith("ENCOMPASS_")}
        env["ENCOMPASS_HOME"] = str(work / "home")
        self.env = python_env(env, work / "pycache")
        self.secrets = work / "secrets.toml"
        self.secrets.write_text('rootpw = "bench-Secret-1"\n')
        self.version = 1
        self.cli("init")
        self.cli("master", "import", "base", self.disk(1))
        for key, extra in (("hostname", ()), ("motd", ()), ("rootpw", ("--secret",))):
            self.cli("master", "items", "add", "base", key, "--type", "file", "--path", f"/etc/{key}", *extra)
        self.names = [f"node{i}" for i in range(1, clones + 1)]
        self.cli("clone", "base", "--count", clones, "--prefix", "node", "--parallel", parallel)
        self.cli("customize", *self.names, *self.inputs(), "--parallel", parallel)

    def disk(self, version: int) -> Path:
        """Version ``version`` of the master's disk: its /etc/release says which."""
        root = self.work / f"root{version}"
        (root / "etc").mkdir(parents=True)
        for key in ("hostname", "motd", "rootpw"):
            (root / "etc" / key).write_text("master\n")
        (root / "etc" / "release").write_text(f"{version}\n")
        (root / "usr" / "lib").mkdir(parents=True)
        (root / "usr" / "lib" / "payload").write_bytes(os.urandom(4 << 20))  # some real content
        raw = self.work / f"disk{version}.raw"
        run("mke2fs", "-q", "-t", "ext4", "-d", root, raw, "256M")
        qcow2 = self.work / f"disk{version}.qcow2"
        run("qemu-img", "convert", "-O", "qcow2", raw, qcow2)
        raw.unlink()
        shutil.rmtree(root)
        return qcow2

    def inputs(self) -> list[str]:
        return ["--set", "hostname={clone}", "--set", "motd=welcome to {clone}",
                "--values", str(self.secrets)]

    def cli(self, *args: object) -> subprocess.CompletedProcess:
        return run(ENCOMPASS, *args, env=self.env)

    def new_version(self) -> None:
        self.version += 1
        disk = self.disk(self.version)
        self.cli("master", "update", "base", "--import", disk)
        disk.unlink()

    def check(self, names: list[str]) -> None:
        """Each clone is on the current version with its own hostname and the secret, or stop."""
        for name in (names[0], names[-1]):
            for path, want in (("/etc/release", str(self.version)), ("/etc/hostname", name),
                               ("/etc/rootpw", "bench-Secret-1")):
                got = self.cli("image", "cat", name, path).stdout.strip()
                if got != want:
                    raise SystemExit(f"rebase_bench: {name}:{path} reads {got!r}, not {want!r}")

    def rebase(self) -> Contender:
        def once(round_: int) -> float:
            self.new_version()
            seconds = timed(lambda: self.cli("rebase", "--all-outdated", "base", "--values", self.secrets,
                                             "--parallel", self.parallel))
            self.check(self.names)
            self.cli("rebase", *self.names, "--discard-old")
            return seconds
        return Contender(f"encompass rebase --all-outdated --parallel {self.parallel}", once)

    def afresh(self) -> Contender:
        fresh = [f"fresh{i}" for i in range(1, self.count + 1)]

        def both() -> None:
            self.cli("clone", "base", "--count", self.count, "--prefix", "fresh", "--parallel", self.parallel)
            self.cli("customize", *fresh, *self.inputs(), "--parallel", self.parallel)

        def once(round_: int) -> float:
            seconds = timed(both)
            self.check(fresh)
            self.cli("image", "delete", *fresh)
            return seconds
        return Contender(f"encompass clone + customize --parallel {self.parallel}", once)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 clones, 2 rounds (unless given)")
    parser.add_argument("--clones", type=int, help="customized clones (default 50)")
    parser.add_argument("--rounds", type=int, help="rounds of each side (default 3)")
    parser.add_argument("--parallel", type=int, default=4, help="clones worked on at once (default 4)")
    args = parser.parse_args()
    clones = args.clones if args.clones is not None else (10 if args.quick else 50)
    rounds = args.rounds if args.rounds is not None else (2 if args.quick else 3)
    if clones < 1 or rounds < 1 or args.parallel < 1:
        parser.error("--clones, --rounds and --parallel must be at least 1")

    work = Path(tempfile.mkdtemp(prefix="encompass-bench-", dir="/var/tmp"))
    try:
        bench = Bench(work, clones, args.parallel)
        # Warm-up, not counted: bytecode compiled once, for both commands' code.
        bench.cli("customize", bench.names[0], *bench.inputs())
        bench.cli("rebase", bench.names[0])  # on the current version already: nothing done
        case = f"{clones} customized clones"
        contenders = [bench.afresh(), bench.rebase()]
        results = interleave(case, contenders, rounds)
        versions = json.loads(bench.cli("master", "versions", "base", "--json").stdout)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"\n{clones} clones with 3 items (one secret), {rounds} rounds, interleaved; "
          f"master at version {versions[-1]['number']} in the end.")
    print_table(results, {case: contenders[0].name})
    afresh, rebased = results
    ratio = rebased.median / afresh.median
    print(f"\nrebase: {rebased.median / clones * 1000:.0f} ms per clone, clone + customize "
          f"{afresh.median / clones * 1000:.0f} ms per clone: {ratio:.2f}x "
          f"(target <= {TARGET}x: {'met' if ratio <= TARGET else 'MISSED'})")
    print(f"ratio: median seconds / those of clone + customize; {machine_line()}.")


if __name__ == "__main__":
    main()
