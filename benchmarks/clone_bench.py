"""Cloning through Encompass against the bare tools doing the same work, in one run.

    .venv/bin/python benchmarks/clone_bench.py [--quick] [--rounds R] [--dir DIR]

(a) N copy-on-write clones (N = 100 and 1,000; 10 and 100 with --quick) of a 3 GiB sparse raw
    master: ``encompass clone master --count N --prefix c --parallel W`` (the real CLI, start-up
    and bookkeeping included; W = 4, the default) against ``qemu-img create -q -f qcow2 -u -F raw
    -b master.raw cK.qcow2 SIZE`` run once per clone by ``xargs -P W`` (the bare tool with the
    same parallelism; it makes the very file Encompass writes, and flushes it too), and by a
    serial shell loop for reference. The first and last of Encompass's clones are checked
    (``qemu-img check``, backing file, size) after each round, untimed. Target: Encompass <= 1.0x
    the parallel bare run. After each round the clones are removed (Encompass's home is put back
    as it was before the first round), so every round starts from the same repository.
(b) one full clone of a non-sparse master (random data, 1 GiB; 128 MiB with --quick):
    ``encompass clone --mode full`` (the CLI, start-up included) and ``clone_images()`` in a
    process that has Encompass loaded (the copy's throughput, bookkeeping included) against
    ``qemu-img convert -t none -W -O raw`` and ``cp``. Every bare contender's time includes
    ``sync FILE``. Target: >= 0.9x the best tool's throughput.

Each contender runs once per round, in turn (A, B, C, A, B, C, ...); the table gives min, median
and max, and the ratio of medians. The page cache cannot be dropped here: the master is read once
before timing, so every contender reads it warm. Encompass runs from bytecode compiled once into
a private folder (as an installed program does), warmed by the untimed setup commands.
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

from rounds import Contender, Result, interleave, machine_line, print_table, python_env, timed

ENCOMPASS = Path(sys.executable).with_name("encompass")
MIB = 1 << 20
WORKERS = 4  # Encompass's default parallelism ([defaults] parallel, the local pool's concurrency)


def run(*args: str | Path, env: dict[str, str] | None = None, stdin: str | None = None) -> str:
    done = subprocess.run([str(a) for a in args], env=env, input=stdin, capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise SystemExit(f"clone_bench: {' '.join(map(str, args))} failed: {done.stderr.strip()}")
    return done.stdout


def warm(path: Path) -> None:
    with path.open("rb") as handle:
        while handle.read(16 * MIB):
            pass


class Encompass:
    """A throwaway ENCOMPASS_HOME driven through the real console script."""

    def __init__(self, home: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ENCOMPASS_")}
        env["ENCOMPASS_HOME"] = str(home)
        self.home = home
        # As an installed Encompass runs: from bytecode written by the untimed setup commands.
        self.env = python_env(env, home.parent / "pycache")
        run(ENCOMPASS, "init", env=self.env)

    def __call__(self, *args: str | Path) -> str:
        return run(ENCOMPASS, *args, env=self.env)

    def volume(self, name: str) -> Path:
        return Path(json.loads(self("image", "show", name, "--json"))["volumes"][0]["location"])


def home_with_master(home: Path, disk: Path) -> tuple[Encompass, Path]:
    """A new home whose master 'master' is imported from ``disk`` (then removed): the home and
    the master's volume, read once so that every contender reads it warm."""
    encompass = Encompass(home)
    encompass("master", "import", "master", disk)
    disk.unlink()
    master = encompass.volume("master")
    warm(master)
    return encompass, master


def bench_cow(work: Path, counts: list[int], size: int, rounds: int) -> list[Result]:
    disk = work / "sparse.raw"
    run("truncate", "-s", str(size), disk)
    run("mkfs.ext4", "-q", "-F", disk)
    encompass, master = home_with_master(work / "home-cow", disk)
    # Every Encompass round starts from this copy of the home (the master alone): deleting a
    # thousand clones through the CLI would take minutes, and each round must start alike.
    pristine = work / "home-cow.pristine"
    run("cp", "-a", "--sparse=always", encompass.home, pristine)
    bare_dir = work / "bare-cow"
    bare_dir.mkdir()
    # One qemu-img create per clone: the standard tool making the very file the local pool
    # writes for a COW clone (it writes the overlay in-process, byte for byte the same).
    create = ["qemu-img", "create", "-q", "-f", "qcow2", "-u", "-F", "raw", "-b", str(master)]

    def bare_done(count: int) -> None:
        made = list(bare_dir.glob("*.qcow2"))
        if len(made) != count:
            raise SystemExit(f"clone_bench: the bare run made {len(made)} of {count} overlays")
        for path in made:
            path.unlink()

    def serial(count: int) -> Contender:
        script = f'for i in $(seq {count}); do "$@" "{bare_dir}/c$i.qcow2" {size} || exit 1; done'

        def once(_round: int) -> float:
            seconds = timed(lambda: run("sh", "-c", script, "loop", *create))
            bare_done(count)
            return seconds
        return Contender("qemu-img create loop (serial)", once)

    def parallel(count: int) -> Contender:
        names = "".join(f"{bare_dir}/c{i}.qcow2\n" for i in range(1, count + 1))
        command = ["xargs", "-P", str(WORKERS), "-I", "{}", *create, "{}", str(size)]

        def once(_round: int) -> float:
            seconds = timed(lambda: run(*command, stdin=names))
            bare_done(count)
            return seconds
        return Contender(f"qemu-img create, xargs -P {WORKERS}", once)

    def ours(count: int) -> Contender:
        def once(_round: int) -> float:
            seconds = timed(lambda: encompass("clone", "master", "--count", str(count), "--prefix",
                                              "c", "--parallel", str(WORKERS)))
            listed = json.loads(encompass("image", "list", "--kind", "clone", "--json"))
            if len(listed) != count or {row["state"] for row in listed} != {"ready"}:
                raise SystemExit(f"clone_bench: encompass made {len(listed)} clones, not {count} ready")
            for name in ("c1", f"c{count}"):  # whole overlays of the master, as qemu-img's are
                overlay = encompass.volume(name)
                run("qemu-img", "check", "-q", overlay)
                info = json.loads(run("qemu-img", "info", "--output=json", overlay))
                if (info["backing-filename"], info["virtual-size"]) != (str(master), size):
                    raise SystemExit(f"clone_bench: {overlay} is not an overlay of {master}")
            shutil.rmtree(encompass.home)
            run("cp", "-a", "--sparse=always", pristine, encompass.home)
            warm(master)
            return seconds
        return Contender(f"encompass clone --count --parallel {WORKERS}", once)

    results = []
    for count in counts:
        case = f"{count} COW clones"
        print(f"(a) {case} of a {size // MIB} MiB sparse raw master, {rounds} rounds", flush=True)
        results += interleave(case, [serial(count), parallel(count), ours(count)], rounds)
    return results


def bench_full(work: Path, size: int, rounds: int) -> list[Result]:
    disk = work / "full.raw"
    block = os.urandom(min(size, 64 * MIB))
    with disk.open("wb") as out:
        for _ in range(size // len(block)):
            out.write(block)
    encompass, master = home_with_master(work / "home-full", disk)
    target = work / "copy.raw"

    def bare(name: str, command: list) -> Contender:
        def once(_round: int) -> float:
            seconds = timed(lambda: (run(*command), run("sync", target)))
            target.unlink()
            return seconds
        return Contender(name, once)

    def checked(name: str, seconds: float) -> float:
        if encompass.volume(name).stat().st_size != size:
            raise SystemExit(f"clone_bench: the full clone {name} has the wrong size")
        encompass("image", "delete", name)
        return seconds

    def through_cli(round_: int) -> float:
        name = f"full{round_}"
        return checked(name, timed(lambda: encompass("clone", "master", name, "--mode", "full")))

    def through_library(round_: int) -> float:
        name = f"lib{round_}"
        library = LIBRARY_CLONE.format(name=name)
        return checked(name, float(run(sys.executable, "-c", library, env=encompass.env)))

    case = f"full clone, {size // MIB} MiB"
    print(f"(b) {case} of random data, {rounds} rounds", flush=True)
    return interleave(case, [
        bare("qemu-img convert -t none -W (+ sync)",
             ["qemu-img", "convert", "-t", "none", "-W", "-O", "raw", master, target]),
        bare("cp (+ sync)", ["cp", master, target]),
        Contender("encompass clone --mode full (CLI)", through_cli),
        Contender("clone_images() in a loaded process", through_library),
    ], rounds)


# The same clone through the library, in a process that has already imported Encompass and
# loaded its plugins (a script or service using Encompass): the copy and its bookkeeping only.
LIBRARY_CLONE = """
import time
from encompass_core.context import Context
from encompass_core.operations.clone import clone_images
ctx = Context()
ctx.pool()
start = time.perf_counter()
(result,) = clone_images(ctx, "master", ["{name}"], mode="full")
assert result.state == "ready", result
print(time.perf_counter() - start)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="10 and 100 COW clones, a 128 MiB full clone: a minute, not several")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each contender (default 3)")
    parser.add_argument("--dir", type=Path, help="where to work (default: a temporary folder in /var/tmp)")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    counts, sparse_size, full_size = ([10, 100], 3 << 30, 128 * MIB) if args.quick else (
        [100, 1000], 3 << 30, 1 << 30)

    with tempfile.TemporaryDirectory(prefix="clone-bench-", dir=args.dir or "/var/tmp") as tmp:
        work = Path(tmp)
        results = bench_cow(work, counts, sparse_size, args.rounds)
        results += bench_full(work, full_size, args.rounds)

    # (a) against the parallel bare run; (b) against the copy itself (qemu-img convert), and the
    # target is read from the best bare tool below.
    reference = {r.case: (f"qemu-img create, xargs -P {WORKERS}" if "COW" in r.case
                          else "qemu-img convert -t none -W (+ sync)") for r in results}
    print()
    print_table(results, reference,
                rate=lambda r: None if "COW" in r.case else full_size / MIB / r.median)
    print()
    medians = {(r.case, r.name): r.median for r in results}
    for count in counts:
        case = f"{count} COW clones"
        ratio = (medians[(case, f"encompass clone --count --parallel {WORKERS}")]
                 / medians[(case, f"qemu-img create, xargs -P {WORKERS}")])
        print(f"(a) {case}: encompass / bare qemu-img with the same parallelism = {ratio:.2f}x "
              f"(target <= 1.0x: {'met' if ratio <= 1.0 else 'MISSED'})")
    full = [r for r in results if "COW" not in r.case]
    best = min(r.median for r in full[:2])
    for r in full[2:]:
        ratio = best / r.median
        print(f"(b) {r.name}: throughput / best bare tool = {ratio:.2f}x "
              f"(target >= 0.9x: {'met' if ratio >= 0.9 else 'MISSED'})")
    print(f"ratio: median seconds / those of the parallel qemu-img create (a) or of qemu-img "
          f"convert (b); {machine_line()}.")
    print("The page cache cannot be dropped here: each master was read once before timing.")


if __name__ == "__main__":
    main()
