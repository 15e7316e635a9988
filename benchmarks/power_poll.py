"""Power state of many physical machines, polled concurrently vs one after another.

Cases: 100 AMT PCs (the lab's WS-Man responder, power state only, in a process of its own,
answering at once, and again answering each request after a firmware-like delay, ``--latency``,
20 ms by default), and, when the bladecenter plugin is installed, 4 lab chassis of 14 blades
(net-snmp ``snmpd`` with the chassis agent each; no blade is started). Concurrently is what the
drivers do: every PC's ``CIM_AssociatedPowerManagementService`` at once
(``AmtPlatformDriver.power_states``), every chassis at once, each in one GETBULK of its
installed-bays bitmap and power column (``Chassis.power_states``). One after another is the same
requests awaited in turn (the amt driver with ``concurrency = 1``; one GET per blade, as an
administrator's script asks). Digest challenges are answered in a warm-up poll, as a monitor
polling again and again has them; each driver keeps its connections to the PCs open between
polls, as it does for the life of the process, and the chassis sessions share one SNMP engine
opened once (making an engine costs 0.2-0.7 s: it loads its MIBs).

Targets (issue 12; the amtc tool queries 180 AMT PCs in 0.25 s): 100 PCs in at most 0.5 s, and
at least 10x faster than one after another.

    .venv/bin/python benchmarks/power_poll.py [--rounds 5] [--pcs 100] [--latency 0.02] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from rounds import Contender, Result, interleave, machine_line, print_table, timed

from encompass_core.config import Config, Section

ROOT = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 0.5
TARGET_SPEEDUP = 10.0
PASSWORD_VAR = "AMT_LAB_PASSWORD"


@contextlib.contextmanager
def responder(count: int, latency: float, password: str) -> Iterator[tuple[list[str], int]]:
    """A responder process serving ``count`` PCs; their ``127.0.0.1:PORT`` endpoints and its pid."""
    env = {**os.environ, PASSWORD_VAR: password,
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen(
        [sys.executable, "-m", "encompass_amt.lab.responder", "--count", str(count),
         "--latency", str(latency)], env=env, stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        if not line:
            raise SystemExit("the AMT responder did not start (see its error above)")
        yield json.loads(line)["endpoints"], process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def amt_driver(endpoints: list[str], concurrency: int, folder: Path):
    from encompass_amt.driver import AmtPlatformDriver

    table = {"addresses": endpoints, "user": "admin", "password_env": PASSWORD_VAR,
             "timeout": 10.0, "concurrency": concurrency}
    section = Section("pcs", "amt", table)
    return AmtPlatformDriver(section, Config(path=folder / "encompass.toml", defaults={}, pools={},
                                             platforms={"pcs": section}))


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def amt_case(case: str, endpoints: list[str], responder_pid: int, rounds: int, folder: Path,
             cpu: dict[str, tuple[float, float]]) -> list[Result]:
    at_once, in_turn = amt_driver(endpoints, 256, folder), amt_driver(endpoints, 1, folder)
    for driver in (at_once, in_turn):  # answer each PC's digest challenge once
        states = driver.power_states()
        assert len(states) == len(endpoints) and set(states.values()) == {"off"}, states
    used: dict[str, list[tuple[float, float]]] = {"concurrent": [], "one after another": []}

    def measured(name: str, driver) -> float:
        mine, theirs = time.process_time(), cpu_seconds(responder_pid)
        seconds = timed(driver.power_states)
        used[name].append((time.process_time() - mine, cpu_seconds(responder_pid) - theirs))
        return seconds

    results = interleave(case, [
        Contender("concurrent", lambda _round: measured("concurrent", at_once)),
        Contender("one after another", lambda _round: measured("one after another", in_turn)),
    ], rounds)
    for name, pairs in used.items():
        cpu[f"{case}, {name}"] = (statistics.median(u[0] for u in pairs),
                                  statistics.median(u[1] for u in pairs))
    at_once.shutdown()
    in_turn.shutdown()
    return results


def chassis_case(rounds: int, chassis_count: int, workdir: Path) -> list[Result] | str:
    """4 chassis x 14 blades, or why the case cannot run."""
    try:
        from encompass_bladecenter.chassis import Chassis
        from encompass_bladecenter.lab_peer import running_chassis
        from encompass_bladecenter.snmp import Credentials, Target
    except ImportError as exc:
        return f"the bladecenter plugin is not installed ({exc})"
    if shutil.which("snmpd", path="/usr/sbin:/usr/bin") is None:
        return "snmpd is not installed (apt-get install snmpd)"
    from pysnmp.hlapi.v3arch.asyncio import SnmpEngine

    with contextlib.ExitStack() as stack:
        labs = [stack.enter_context(running_chassis(workdir / f"c{n}", None, slots=tuple(range(1, 15)),
                                                    name=f"chassis{n}"))
                for n in range(1, chassis_count + 1)]
        # One loop and one engine for the run, the sessions opened once: a monitor polls again
        # and again, and an engine costs 0.2-0.7 s to make (it loads its MIBs).
        runner = stack.enter_context(asyncio.Runner())
        opened = contextlib.AsyncExitStack()
        stack.callback(lambda: runner.run(opened.aclose()))

        async def open_all() -> list:
            engine = SnmpEngine()
            opened.callback(engine.close_dispatcher)
            return [await opened.enter_async_context(
                        Chassis(Target(lab.name, lab.address, lab.port, timeout=5.0, retries=1),
                                Credentials("2c", community=lab.community), engine))
                    for lab in labs]

        chassis = runner.run(open_all())

        async def concurrently() -> None:
            found = await asyncio.gather(*(one.power_states() for one in chassis))
            assert [len(states) for states in found] == [14] * len(labs), found

        async def in_turn() -> None:
            states = [await one.power_state(slot) for one in chassis for slot in range(1, 15)]
            assert states == ["off"] * 14 * len(labs), states

        case = f"{len(labs)} chassis x 14 blades"
        runner.run(concurrently())  # warm-up: the agents have read their state once
        runner.run(in_turn())
        return interleave(case, [
            Contender("concurrent", lambda _round: timed(lambda: runner.run(concurrently()))),
            Contender("one after another", lambda _round: timed(lambda: runner.run(in_turn()))),
        ], rounds)


def verdict(results: list[Result], pcs: int) -> list[str]:
    lines = []
    by_case: dict[str, dict[str, Result]] = {}
    for result in results:
        by_case.setdefault(result.case, {})[result.name] = result
    for case, pair in by_case.items():
        fast, slow = pair["concurrent"].median, pair["one after another"].median
        speedup = slow / fast
        seconds = ""
        if case.startswith(f"{pcs} AMT PCs"):
            met = "met" if fast <= TARGET_SECONDS else "missed"
            seconds = f"{fast:.2f} s (target <= {TARGET_SECONDS} s: {met}), "
        met = "met" if speedup >= TARGET_SPEEDUP else "missed"
        lines.append(f"{case}: concurrent {seconds}{speedup:.1f}x faster than one after another "
                     f"(target >= {TARGET_SPEEDUP:.0f}x: {met})")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds of each contender (default 5)")
    parser.add_argument("--pcs", type=int, default=100, help="AMT PCs (default 100)")
    parser.add_argument("--latency", type=float, default=0.02,
                        help="seconds a PC takes to answer in the second AMT case (default 0.02)")
    parser.add_argument("--chassis", type=int, default=4,
                        help="lab chassis of 14 blades (default 4; 0 leaves the case out)")
    parser.add_argument("--quick", action="store_true", help="2 rounds, 20 PCs, 1 chassis")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.pcs, args.chassis = 2, 20, 1
    password = secrets.token_urlsafe(12)
    os.environ[PASSWORD_VAR] = password  # the drivers read it from there, as password_env says
    results: list[Result] = []
    cpu: dict[str, tuple[float, float]] = {}
    workdir = Path(tempfile.mkdtemp(prefix="enc-power-poll-", dir="/var/tmp"))
    workdir.chmod(0o755)  # the chassis' snmpd runs as nobody
    try:
        for latency in (0.0, args.latency):
            case = f"{args.pcs} AMT PCs" + (f", {latency * 1000:g} ms each" if latency else "")
            with responder(args.pcs, latency, password) as (endpoints, pid):
                results += amt_case(case, endpoints, pid, args.rounds, workdir, cpu)
        chassis = chassis_case(args.rounds, args.chassis, workdir) if args.chassis else \
            "--chassis 0"
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if isinstance(chassis, str):
        skipped = f"chassis case skipped: {chassis}"
    else:
        results += chassis
        skipped = ""
    print()
    print_table(results, {result.case: "concurrent" for result in results})
    for line in verdict(results, args.pcs):
        print(line)
    for case, (mine, theirs) in cpu.items():
        print(f"{case}: a poll used {mine:.2f} s of CPU here and {theirs:.2f} s in the responder "
              "(medians)")
    if skipped:
        print(skipped)
    print(machine_line())


if __name__ == "__main__":
    main()
