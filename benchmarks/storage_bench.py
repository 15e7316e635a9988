"""Shared storage through Encompass against the bare tools doing the same work, in one run.

    .venv/bin/python benchmarks/storage_bench.py [--quick] [--rounds R] [--dir DIR]

(a) one 1 GiB full clone (random data; 128 MiB with --quick) from the local pool onto an NFS
    export, and one from the export to the local pool: ``encompass clone SOURCE NEW --pool P
    --mode full`` (the real CLI: start-up, bookkeeping and the core's streaming copy through the
    pools' ``expose``) against libnfs's ``nfs-cp`` and ``qemu-img convert -O raw`` to or from the
    ``nfs://`` URL. The server is nfs-ganesha in a private network namespace, started as the nfs
    plugin's tests start it; every contender runs in that namespace. Encompass flushes what it
    writes before it calls a clone ready (an fsync of the local file; a COMMIT, which the server
    turns into an fsync, of the export's). Writing to the export, the bare tools do too (libnfs
    and QEMU's NFS driver COMMIT a file they wrote when they close it: a ``sync`` of the
    export's file after either takes 0.00 s, after a plain ``cp`` 2.1-2.3 s), so local -> NFS
    compares them as they are. Writing a local file they do not: NFS -> local they also run as
    "+ sync", followed by ``sync FILE`` on the file they wrote, the like-with-like comparison.
    Target: >= 0.9x the throughput of the best bare tool. The verdict compares medians; the
    same line gives the median of the rounds' own ratios (best bare tool / Encompass, within
    each round), which a disk whose speed drifts from round to round moves less.
(b) 20 copy-on-write clones (FlashCopy logical drives) of a master on a DS4xxx subsystem: ``encompass
    clone MASTER --count 20`` against the very SMcli commands Encompass issued to create them,
    recorded in an untimed warm-up round (reads of the subsystem's profile, were there any, left
    out: a person typing the commands knows the names; Encompass issues one call per FlashCopy, the
    create and a show of what it made, which the bare side runs as they are), run again one after
    another and two at once (the pool's concurrency) by ``xargs``. The subsystem is the ds4xxx
    plugin's SMcli simulator over a private tgtd, so the figures measure bookkeeping and command
    handling, not a real array. Target: <= 1.2x the bare commands run as parallel as Encompass
    runs them.

Each contender runs once per round, in turn, each round starting one contender later than the
last (none always follows the same one); the table gives min, median and max, and the ratio
of medians to the reference contender. What every contender made is checked, then removed, and
the disk given time to write out what is pending (``sync``, then 5 s of quiet, untimed), so that each
starts alike.
Encompass runs from bytecode compiled once into a private folder.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from rounds import Contender, Result, interleave, machine_line, print_table, python_env, timed

ROOT = Path(__file__).resolve().parents[1]
# The peers come from the plugins' own test helpers: nothing of them is installed.
sys.path[:0] = [str(ROOT / "plugins" / "nfs" / "tests"), str(ROOT / "plugins" / "ds4xxx" / "tests")]

from encompass_nfs.client import LibnfsExport  # noqa: E402
from encompass_nfs.nfsurl import parse_nfs_url  # noqa: E402
from nfs_testing import Ganesha, missing_tools  # noqa: E402

from encompass_core.testing.tgt import running_tgtd  # noqa: E402

ENCOMPASS = Path(sys.executable).with_name("encompass")
SMCLI = ROOT / "plugins" / "ds4xxx" / "tests" / "SMcli"
CONTROLLERS = ["127.0.0.2", "127.0.0.3"]
MIB = 1 << 20
FLASHCOPIES = 20


#: Seconds of quiet after each contender, once ``sync`` is back (see :func:`settle`).
QUIET = 5.0


def settle() -> None:
    """Untimed, after a contender's copy is checked and removed: the disk finishes what is
    still on its way to it (the removed gigabyte, freed blocks) before the next one starts.

    ``sync`` is not enough on this machine's virtual disk (ext4 mounted with ``discard``):
    without a pause, a copy that followed a fast one was slow and the next fast again, every
    tool alike (1.2-1.7 s and 3.0-3.9 s a gigabyte, alternating), so the order of the
    contenders decided who lost. After :data:`QUIET` seconds every copy ran at the same pace.
    """
    run("sync")
    time.sleep(QUIET)


def run(*args: str | Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run([str(a) for a in args], env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"storage_bench: {' '.join(map(str, args))} failed: {done.stderr.strip()}")
    return done.stdout


class Encompass:
    """A throwaway ENCOMPASS_HOME driven through the real console script."""

    def __init__(self, home: Path, config: str, extra_env: dict[str, str] | None = None) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ENCOMPASS_")}
        env.update(extra_env or {}, ENCOMPASS_HOME=str(home))
        self.env = python_env(env, home.parent / f"pycache-{home.name}")
        self.home = home
        run(ENCOMPASS, "init", env=self.env)
        with open(home / "encompass.toml", "a", encoding="utf-8") as handle:
            handle.write(config)

    def __call__(self, *args: str | Path) -> str:
        return run(ENCOMPASS, *args, env=self.env)

    def location(self, name: str) -> str:
        return json.loads(self("image", "show", name, "--json"))["volumes"][0]["location"]


# -- (a) NFS ---------------------------------------------------------------------------------
def bench_nfs(work: Path, size: int, rounds: int) -> list[Result]:
    why = missing_tools()
    if why:
        raise SystemExit(f"storage_bench: {why}")
    server = Ganesha(work / "ganesha")
    server.start()
    try:
        with server.entered():
            return _bench_nfs(work, server, size, rounds)
    finally:
        server.stop()


def _bench_nfs(work: Path, server: Ganesha, size: int, rounds: int) -> list[Result]:
    url = server.url
    source = work / "random.raw"
    with source.open("wb") as handle:
        for _ in range(size // MIB):
            handle.write(os.urandom(MIB))
    encompass = Encompass(work / "home-nfs", f'\n[pools.nas]\ndriver = "nfs"\nurl = "{url}"\n')
    encompass("master", "import", "onlocal", source)
    encompass("master", "import", "onnas", source, "--pool", "nas")
    local_master = Path(encompass.location("onlocal"))
    nas_master = encompass.location("onnas")
    settle()  # the three gigabytes just written are on the disk before the first contender starts
    bare_local = work / "bare-copy.raw"
    export = LibnfsExport(parse_nfs_url(url, "storage_bench"), "nas")
    bare_nfs = f"{url}/bare-copy.raw"

    def check_size(path: Path) -> None:
        if path.stat().st_size != size:
            raise SystemExit(f"storage_bench: {path} holds {path.stat().st_size} bytes, not {size}")

    def bare(command: list[str], made: Path, flush: bool, remove: Callable[[], None]) -> Contender:
        def copy_and_flush() -> None:
            run(*command)
            if flush:
                run("sync", made)

        def once(_round: int) -> float:
            seconds = timed(copy_and_flush)
            check_size(made)
            remove()
            settle()
            return seconds
        return Contender(command[0] + (" + sync" if flush else ""), once)

    def to_nfs_bare(command: list[str]) -> Contender:
        # Removed through the server, as Encompass removes its clone: a file unlinked behind
        # ganesha's back stays open in it, its gigabyte held, and is freed (and discarded)
        # later, in the middle of whichever copy runs then.
        made = server.export_dir / "bare-copy.raw"
        return bare(command, made, False, lambda: export.unlink(made.name))

    def from_nfs_bare(command: list[str], flush: bool = False) -> Contender:
        return bare(command, bare_local, flush, bare_local.unlink)

    def ours(master: str, pool: str, label: str) -> Contender:
        def once(round_: int) -> float:
            name = f"c{round_}"
            seconds = timed(lambda: encompass("clone", master, name, "--pool", pool, "--mode", "full"))
            shown = json.loads(encompass("image", "show", name, "--json"))
            if shown["state"] != "ready" or shown["volumes"][0]["pool"] != pool:
                raise SystemExit(f"storage_bench: clone {name} is {shown['state']} in {pool}")
            encompass("image", "delete", name)
            settle()
            return seconds
        return Contender(label, once)

    to_nfs = [["nfs-cp", str(local_master), bare_nfs],
              ["qemu-img", "convert", "-O", "raw", str(local_master), bare_nfs]]
    from_nfs = [["nfs-cp", nas_master, str(bare_local)],
                ["qemu-img", "convert", "-O", "raw", nas_master, str(bare_local)]]
    try:
        results = interleave(f"local -> NFS, {size // MIB} MiB", [
            *(to_nfs_bare(command) for command in to_nfs),  # they COMMIT on close: flushed
            ours("onlocal", "nas", "encompass clone --pool nas --mode full"),
        ], rounds, rotate=True)
    finally:
        export.close()
    results += interleave(f"NFS -> local, {size // MIB} MiB", [
        *(from_nfs_bare(command, flush) for flush in (False, True) for command in from_nfs),
        ours("onnas", "local", "encompass clone --pool local --mode full"),
    ], rounds, rotate=True)
    return results


# -- (b) DS4xxx ------------------------------------------------------------------------------
def _labels(state: Path) -> list[str]:
    return [d["label"] for d in json.loads(state.read_text())["drives"].values()]


def bench_san(work: Path, rounds: int) -> list[Result]:
    if shutil.which("tgtd") is None:
        raise SystemExit("storage_bench: tgt is not installed (apt-get install tgt)")
    state = work / "sim" / "state.json"
    state.parent.mkdir()
    env = {**os.environ, "SMCLI_SIM_STATE": str(state)}
    log = work / "smcli.log"
    recorder = work / "SMcli-recording"
    recorder.write_text(f"#!/bin/sh\n{sys.executable} -c 'import json, sys; "
                        f"print(json.dumps(sys.argv[1:]))' \"$@\" >> {shlex.quote(str(log))}\n"
                        f"exec {shlex.quote(str(SMCLI))} \"$@\"\n")
    recorder.chmod(0o755)
    (work / "tgt").mkdir()
    with running_tgtd(work / "tgt") as tgtd:
        run(SMCLI, "--sim-init", "name=DS4700-sim", f"controllers={','.join(CONTROLLERS)}",
            "arrays=1:4096 MB", f"portal=127.0.0.1:{tgtd.port}", f"tgt_control={tgtd.control}",
            f"data_dir={work / 'sim' / 'drives'}", env=env)
        table = (f'\n[pools.san]\ndriver = "ds4xxx"\nsmcli = "{{smcli}}"\ncontrollers = '
                 f'{json.dumps(CONTROLLERS)}\narray = "1"\nutility_initiator = '
                 f'"iqn.2024-01.org.encompass:utility"\nlun_offset = 1\npoll_interval = 0.1\n')
        encompass = Encompass(work / "home-san", table.format(smcli=recorder),
                              {"SMCLI_SIM_STATE": str(state)})
        disk = work / "small.raw"
        run("truncate", "-s", "64M", disk)
        run("mkfs.ext4", "-q", "-F", disk)
        encompass("master", "import", "base", disk, "--pool", "san")
        before = set(_labels(state))
        # The warm-up round, recorded: the commands Encompass issues for 20 FlashCopies.
        log.write_text("")
        encompass("clone", "base", "--count", str(FLASHCOPIES), "--prefix", "f", "--pool", "san")
        issued = [json.loads(line) for line in log.read_text().splitlines()]
        encompass("image", "delete", *[f"f{i}" for i in range(1, FLASHCOPIES + 1)])
        config = encompass.home / "encompass.toml"
        config.write_text(config.read_text().replace(str(recorder), str(SMCLI)))
        # What an administrator types: the commands that make something. Encompass's reads of the
        # subsystem's profile (to find the base drive and a free label) are its own overhead.
        typed = [argv for argv in issued if not all(
            part.strip().startswith("show ") for part in argv[-1].split(";") if part.strip())]
        commands = work / "by-hand"
        commands.mkdir()
        for number, argv in enumerate(typed):
            (commands / f"{number:03}.sh").write_text(
                f"{shlex.quote(str(SMCLI))} {' '.join(shlex.quote(a) for a in argv)} >/dev/null\n")
        listing = "".join(f"{path}\n" for path in sorted(commands.iterdir()))
        workers = 2  # the ds4xxx pool's default concurrency: clones it makes at once

        def check_and_clean(who: str) -> None:
            made = [label for label in _labels(state) if label not in before]
            flashcopies = [label for label in made if not label.endswith("-R")]
            if len(flashcopies) != FLASHCOPIES:
                raise SystemExit(f"storage_bench: {who} made {len(flashcopies)} FlashCopies, "
                                 f"not {FLASHCOPIES}")

        def clean() -> None:
            for label in sorted(set(_labels(state)) - before, key=lambda x: x.endswith("-R")):
                if label in _labels(state):
                    run(SMCLI, *CONTROLLERS, "-c", f'delete logicalDrive ["{label}"];', env=env)

        def bare(parallel: int) -> Contender:
            def once(_round: int) -> float:
                seconds = timed(lambda: subprocess.run(
                    ["xargs", "-P", str(parallel), "-n", "1", "sh"], input=listing, text=True,
                    env=env, check=True))
                check_and_clean("the bare commands")
                clean()
                return seconds
            return Contender(f"SMcli create commands, {parallel} at once", once)

        def ours(_round: int) -> float:
            seconds = timed(lambda: encompass("clone", "base", "--count", str(FLASHCOPIES), "--prefix", "f",
                                              "--pool", "san"))
            check_and_clean("encompass")
            encompass("image", "delete", *[f"f{i}" for i in range(1, FLASHCOPIES + 1)])
            return seconds

        print(f"  Encompass issued {len(issued)} SMcli calls; the bare side types the {len(typed)} that "
              f"create the FlashCopies")
        return interleave(f"{FLASHCOPIES} FlashCopies", [
            bare(1), bare(workers), Contender(f"encompass clone --count {FLASHCOPIES}", ours),
        ], rounds)


def paired(results: list[Result], case: str, ours: str, bare_names: list[str]) -> float:
    """The median over rounds of (the best bare tool's seconds in that round / ours in that
    round): the contenders of one round ran within seconds of each other, under the same state
    of the disk, which drifts between rounds far more than the tools differ (a virtual disk's
    throughput here went from 1.3 s to 5.5 s a gigabyte within an hour)."""
    seconds = {r.name: r.seconds for r in results if r.case == case}
    return statistics.median(min(seconds[n][i] for n in bare_names) / seconds[ours][i]
                             for i in range(len(seconds[ours])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a 128 MiB copy instead of 1 GiB")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of each contender (default 5)")
    parser.add_argument("--only", choices=("nfs", "san"), help="run one half of the benchmark")
    parser.add_argument("--dir", type=Path, help="where to work (default: a temporary folder in /var/tmp)")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if os.geteuid() != 0:
        parser.error("nfs-ganesha runs in a private network namespace here: run as root")
    size = 128 * MIB if args.quick else 1024 * MIB
    with tempfile.TemporaryDirectory(prefix="storage-bench-", dir=args.dir or "/var/tmp") as tmp:
        work = Path(tmp)
        work.chmod(0o755)
        results = bench_nfs(work, size, args.rounds) if args.only != "san" else []
        results += bench_san(work, args.rounds) if args.only != "nfs" else []

    reference = {r.case: ("SMcli create commands, 2 at once" if "FlashCopies" in r.case
                          else "nfs-cp") for r in results}
    print()
    print_table(results, reference,
                rate=lambda r: None if "FlashCopies" in r.case else size / MIB / r.median)
    print()
    medians = {(r.case, r.name): r.median for r in results}
    for case in dict.fromkeys(r.case for r in results):
        names = [r.name for r in results if r.case == case]
        ours = next(n for n in names if n.startswith("encompass"))
        if "FlashCopies" in case:
            ratio = medians[(case, ours)] / medians[(case, names[1])]
            print(f"(b) {case}: encompass / the bare SMcli commands, as parallel = {ratio:.2f}x "
                  f"(target <= 1.2x: {'met' if ratio <= 1.2 else 'MISSED'})")
        else:
            synced = [n for n in names if "sync" in n]
            for label, bare_names in (
                    ("best bare tool" + ("" if synced else " (which flushes: like with like)"),
                     [n for n in names if n != ours and "sync" not in n]),
                    ("best bare tool + sync (like with like)", synced)):
                if not bare_names:
                    continue
                best = min(medians[(case, n)] for n in bare_names)
                ratio = best / medians[(case, ours)]
                print(f"(a) {case}: throughput / {label} = {ratio:.2f}x "
                      f"(target >= 0.9x: {'met' if ratio >= 0.9 else 'MISSED'}); "
                      f"round by round: {paired(results, case, ours, bare_names):.2f}x")
    print(f"ratio: median seconds / those of nfs-cp (a) or of the bare SMcli commands (b); {machine_line()}.")
    print("The page cache cannot be dropped here; every source was written or read before timing.")


if __name__ == "__main__":
    main()
