"""What the benchmarks share: interleaved rounds, min/median/max, one table, a Python env.

Each contender runs once per round, in turn (A round 1, B round 1, A round 2, ...), so that a
change in the machine's load during the run falls on every contender alike rather than on
whichever ran last; the table shows the spread (min, max) beside the median.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import attrs


@attrs.frozen
class Contender:
    """One way of doing a case's work; ``run(round_)`` does it once and returns its seconds."""

    name: str
    run: Callable[[int], float]


@attrs.frozen
class Result:
    """A contender's seconds over the rounds of one case."""

    case: str
    name: str
    seconds: tuple[float, ...]

    @property
    def min(self) -> float:
        return min(self.seconds)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def max(self) -> float:
        return max(self.seconds)


def timed(action: Callable[[], object]) -> float:
    """Seconds ``action()`` took, wall clock."""
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def interleave(case: str, contenders: Sequence[Contender], rounds: int,
               progress: Callable[[str], None] | None = print, rotate: bool = False) -> list[Result]:
    """Run every contender once per round, in turn; their results in the contenders' order.

    With ``rotate``, each round starts one contender later (B C A, then C A B, ...), so that
    none always follows the same one: where a contender leaves work behind for the machine (a
    file's blocks still being freed, a disk still writing), it falls on each in turn."""
    seconds: dict[str, list[float]] = {c.name: [] for c in contenders}
    for round_ in range(1, rounds + 1):
        shift = (round_ - 1) % len(contenders) if rotate else 0
        for contender in [*contenders[shift:], *contenders[:shift]]:
            took = contender.run(round_)
            seconds[contender.name].append(took)
            if progress:
                progress(f"  {case}: round {round_}/{rounds}, {contender.name}: {took:.2f} s")
    return [Result(case, c.name, tuple(seconds[c.name])) for c in contenders]


def print_table(results: Sequence[Result], reference: dict[str, str],
                rate: Callable[[Result], float | None] | None = None) -> None:
    """One table: a row per contender with min, median and max seconds, and the ratio of its
    median to the median of its case's reference contender (``reference[case]``, a name)."""
    medians = {(r.case, r.name): r.median for r in results}
    case_width = max(len(r.case) for r in results) + 2
    name_width = max(len(r.name) for r in results) + 2
    rate_head = f"{'MB/s':>8}" if rate else ""
    print(f"{'case':<{case_width}}{'contender':<{name_width}}{'min s':>8}{'median s':>10}"
          f"{'max s':>8}{rate_head}{'ratio':>8}")
    previous = None
    for r in results:
        ratio = r.median / medians[(r.case, reference[r.case])]
        shown_rate = ""
        if rate:
            value = rate(r)
            shown_rate = f"{value:>8.0f}" if value is not None else f"{'-':>8}"
        case = r.case if r.case != previous else ""
        previous = r.case
        print(f"{case:<{case_width}}{r.name:<{name_width}}{r.min:>8.2f}{r.median:>10.2f}"
              f"{r.max:>8.2f}{shown_rate}{ratio:>8.2f}")


def python_env(base: dict[str, str], pycache: Path) -> dict[str, str]:
    """``base`` for a Python subprocess that runs as an installed program does: from bytecode
    compiled once into ``pycache`` (a private folder) and reused from the second run on, even
    where the shell sets PYTHONDONTWRITEBYTECODE."""
    env = dict(base)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


def machine_line() -> str:
    """The CPUs and load, which every figure depends on."""
    return f"{os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.2f} at the end"
