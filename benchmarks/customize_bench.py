"""Benchmark: customize 10 clones with Encompass, then with virt-customize, in one run.

Encompass applies three items to each clone (the hostname file, a regexp on /etc/hosts, a
run-once boot script) in one ``encompass customize --master`` command, timed end to end
(process start included). virt-customize then sets ``--hostname`` on each of the same clones
(``LIBGUESTFS_BACKEND=direct``, ``LIBGUESTFS_BACKEND_SETTINGS=force_tcg``), one after the other.
The target is Encompass ≥ 200× faster. Run: ``.venv/bin/python benchmarks/customize_bench.py``
(``--clones N``, ``--parallel N``, ``--skip-virt-customize``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clones", type=int, default=10)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--skip-virt-customize", action="store_true")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="encompass-bench-"))
    env = {**os.environ, "ENCOMPASS_HOME": str(work / "home")}
    try:
        guest_tree(work / "tree")
        run("mke2fs", "-q", "-t", "ext4", "-L", "root", "-d", work / "tree", work / "disk.raw", "256M")
        run("qemu-img", "convert", "-O", "qcow2", work / "disk.raw", work / "master.qcow2")
        (work / "firstboot.sh").write_text("#!/bin/sh\necho 'first boot of {clone}' > /var/log/firstboot\n")
        enc = [ENCOMPASS]
        run(*enc, "init", env=env)
        run(*enc, "master", "import", "base", work / "master.qcow2", env=env)
        run(*enc, "master", "items", "add", "base", "hostname", "--type", "file", "--path", "/etc/hostname",
            env=env)
        run(*enc, "master", "items", "add", "base", "hosts", "--type", "regexp", "--path", "/etc/hosts",
            "--param", r"pattern=^127\.0\.1\.1\s.*$", "--param", r"replacement=127.0.1.1\t{value}", env=env)
        run(*enc, "master", "items", "add", "base", "firstboot", "--type", "bootscript",
            "--path", "/usr/local/sbin/encompass-firstboot", env=env)
        run(*enc, "clone", "base", "--count", args.clones, "--prefix", "node", env=env)
        names = [f"node{i}" for i in range(1, args.clones + 1)]

        start = time.perf_counter()
        run(*enc, "customize", "--master", "base", "--set", "hostname={clone}", "--set", "hosts={clone}",
            "--set-file", f"firstboot={work / 'firstboot.sh'}", "--parallel", args.parallel, env=env)
        encompass_seconds = time.perf_counter() - start
        for name in names:
            got = run(*enc, "image", "cat", name, "/etc/hostname", env=env).stdout
            assert got == f"{name}\n", (name, got)
        print(f"host:           {os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.2f} "
              "(other work on the host slows both sides)")
        print(f"encompass:      {args.clones} clones x 3 items in {encompass_seconds:.2f} s "
              f"({encompass_seconds / args.clones * 1000:.0f} ms per clone, --parallel {args.parallel})")

        if args.skip_virt_customize:
            print("virt-customize: skipped (--skip-virt-customize)")
            return
        if shutil.which("virt-customize") is None:
            print("virt-customize: not installed here (apt-get install libguestfs-tools); no comparison")
            return
        vc_env = {**os.environ, "LIBGUESTFS_BACKEND": "direct", "LIBGUESTFS_BACKEND_SETTINGS": "force_tcg"}
        locations = {n: json.loads(run(*enc, "image", "show", n, "--json", env=env).stdout)
                     ["volumes"][0]["location"] for n in names}
        start = time.perf_counter()
        for name in names:
            done = run("virt-customize", "-q", "-a", locations[name], "--hostname", f"vc-{name}",
                       env=vc_env, check=False)
            if done.returncode != 0:
                print(f"virt-customize: cannot run here: {done.stderr.strip().splitlines()[-1:]}")
                return
        vc_seconds = time.perf_counter() - start
        print(f"virt-customize: {args.clones} clones x --hostname in {vc_seconds:.1f} s "
              f"({vc_seconds / args.clones:.1f} s per clone, TCG)")
        ratio = vc_seconds / encompass_seconds
        verdict = "met" if ratio >= TARGET else "NOT met"
        print(f"speed-up:       {ratio:.0f}x (target >= {TARGET:.0f}x): {verdict}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
