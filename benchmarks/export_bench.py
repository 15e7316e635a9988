"""Exporting an image as an OVA through Encompass against the bare tools doing the same work.

    .venv/bin/python benchmarks/export_bench.py [--quick] [--rounds R] [--dir DIR]

A 1 GiB raw master (128 MiB with --quick) holding what a used disk holds: a quarter random
(incompressible) data, a quarter text-like data (compressible), the rest never written (holes).
``encompass export master out.ova`` (the real CLI, start-up and bookkeeping included: the image
is held in ``exporting`` and given back, the metadata section written, every file hashed into
the manifest) and ``export_image()`` in a process that has Encompass loaded, against the bare
tools making the same package: ``qemu-img convert -O vmdk -o subformat=streamOptimized`` of the
master, then ``tar`` of a descriptor and that VMDK. Every contender's time includes flushing
the OVA to disk (Encompass fsyncs it before naming it; the bare run is followed by
``sync FILE``). Target: Encompass's throughput >= 0.9x the bare tools'.

Each contender runs once per round, in turn; the table gives min, median and max, and the ratio
of medians, and each contender's CPU seconds. Encompass runs from bytecode compiled once into a
private folder (an untimed export of a small image compiles the export's part). The page cache
cannot be dropped here: the master is read once before timing.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tarfile
import tempfile
from pathlib import Path

from clone_bench import Encompass, run, warm
from rounds import Contender, Result, interleave, machine_line, print_table, timed

MIB = 1 << 20
BARE = "qemu-img convert streamOptimized + tar (+ sync)"
CLI = "encompass export (CLI)"
LIBRARY = "export_image() in a loaded process"


def make_disk(path: Path, size: int) -> None:
    """``size`` bytes: a quarter random, a quarter repeating text, the rest holes."""
    quarter = size // 4
    text = b"".join(b"line %08d of a log file that compresses well\n" % i for i in range(20000))
    with path.open("wb") as out:
        out.truncate(size)
        random_left = quarter
        while random_left:
            chunk = os.urandom(min(4 * MIB, random_left))
            out.write(chunk)
            random_left -= len(chunk)
        text_left = quarter
        while text_left:
            chunk = text[:text_left]
            out.write(chunk)
            text_left -= len(chunk)


#: CPU seconds (user + system) each contender's processes used, per round: on a machine shared
#: with other work the wall clock wanders, what the work itself costs does not.
CPU: dict[str, list[float]] = {}


def with_cpu(name: str, action) -> float:
    """Run ``action()`` (which waits for its processes), record their CPU seconds under ``name``;
    return its wall seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    seconds = timed(action)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU.setdefault(name, []).append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return seconds


def checked_ova(path: Path, disk_name: str) -> None:
    with tarfile.open(path) as archive:
        names = archive.getnames()
    if names[0].endswith(".ovf") is False or disk_name not in names:
        raise SystemExit(f"export_bench: {path} holds {names}, not an OVA with {disk_name}")
    path.unlink()


def bench(work: Path, size: int, rounds: int) -> list[Result]:
    disk = work / "master.raw"
    make_disk(disk, size)
    encompass = Encompass(work / "home")
    encompass("master", "import", "master", disk)
    disk.unlink()
    # Untimed: an export of a small image, which compiles the export's modules into the private
    # bytecode folder (as the setup commands do for the rest), as an installed Encompass has them.
    small = work / "small.raw"
    run("truncate", "-s", "1M", small)
    encompass("master", "import", "small", small)
    encompass("export", "small", work / "small.ova")
    master = encompass.volume("master")
    warm(master)
    out = work / "out"
    out.mkdir()
    descriptor = out / "master.ovf"
    descriptor.write_text("<Envelope/>\n")  # a few KiB or a few bytes: no matter to the timing

    def bare(_round: int) -> float:
        vmdk = out / "master-disk0.vmdk"
        ova = out / "bare.ova"

        def make() -> None:
            run("qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized",
                master, vmdk)
            run("tar", "-C", out, "-cf", ova, "--format=ustar", descriptor.name, vmdk.name)
            run("sync", ova)
        seconds = with_cpu(BARE, make)
        vmdk.unlink()
        checked_ova(ova, "master-disk0.vmdk")
        return seconds

    def through_cli(_round: int) -> float:
        ova = out / "cli.ova"
        seconds = with_cpu(CLI, lambda: encompass("export", "master", ova))
        checked_ova(ova, "master-disk0.vmdk")
        return seconds

    def through_library(_round: int) -> float:
        ova = out / "lib.ova"
        seconds = 0.0

        def export() -> None:
            nonlocal seconds
            seconds = float(run(sys.executable, "-c", LIBRARY_EXPORT.format(target=ova), env=encompass.env))
        with_cpu(LIBRARY, export)
        checked_ova(ova, "master-disk0.vmdk")
        return seconds

    case = f"export, {size // MIB} MiB image"
    print(f"{case} (a quarter random, a quarter text, the rest holes), {rounds} rounds", flush=True)
    return interleave(case, [Contender(BARE, bare), Contender(CLI, through_cli),
                             Contender(LIBRARY, through_library)], rounds)


# The same export through the library, in a process that has already imported Encompass and
# loaded its plugins: the export and its bookkeeping only.
LIBRARY_EXPORT = """
import time
from pathlib import Path
from encompass_core.context import Context
from encompass_core.operations.export import export_image
ctx = Context()
ctx.pool()
start = time.perf_counter()
export_image(ctx, "master", Path("{target}"))
print(time.perf_counter() - start)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a 128 MiB image instead of 1 GiB")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each contender (default 3)")
    parser.add_argument("--dir", type=Path, help="where to work (default: a temporary folder in /var/tmp)")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    size = 128 * MIB if args.quick else 1 << 30

    with tempfile.TemporaryDirectory(prefix="export-bench-", dir=args.dir or "/var/tmp") as tmp:
        results = bench(Path(tmp), size, args.rounds)

    print()
    print_table(results, {r.case: BARE for r in results}, rate=lambda r: size / MIB / r.median)
    print()
    bare = results[0].median
    for result in results[1:]:
        ratio = bare / result.median
        print(f"{result.name}: throughput / the bare tools' = {ratio:.2f}x "
              f"(target >= 0.9x: {'met' if ratio >= 0.9 else 'MISSED'})")
    for name, seconds in CPU.items():
        print(f"CPU seconds (user + system, median of {len(seconds)}): {name}: "
              f"{statistics.median(seconds):.2f}")
    print(f"ratio: median seconds / those of the bare tools; MB/s: the image's size over the median; "
          f"{machine_line()}.")
    print("The page cache cannot be dropped here: the master was read once before timing.")


if __name__ == "__main__":
    main()
