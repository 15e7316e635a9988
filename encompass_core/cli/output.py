"""Printing for people (plain tables on stdout, messages and progress on stderr) and for scripts
(--json)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

_consoles: dict[str, Console] = {}


def __getattr__(name: str) -> Console:
    """``output.out`` and ``output.err``: rich consoles, made on first use (rich is slow to
    import, and many commands print only a line or JSON)."""
    if name not in ("out", "err"):
        raise AttributeError(name)
    if name not in _consoles:
        from rich.console import Console

        if name == "out":
            # When stdout is a pipe or file, do not wrap tables at 80 columns: people grep them.
            _consoles[name] = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
        else:
            _consoles[name] = Console(stderr=True, highlight=False, soft_wrap=True)
    return _consoles[name]


def emit_json(value: Any) -> None:
    """Print ``value`` (model objects allowed) as indented JSON on stdout."""
    from ..convert import to_document  # attrs: not imported by commands that print no model

    sys.stdout.write(json.dumps(to_document(value), indent=2, sort_keys=False) + "\n")


def emit_rows(rows: Sequence[dict[str, Any]]) -> None:
    """Print a listing's rows (plain JSON values already) as a JSON list, one row a line.

    Each row goes through json's C encoder (``indent`` would fall back to the pure-Python one:
    twice the time at 10,000 rows), and a row a line is easy to grep.
    """
    from json import encoder

    plain = json.JSONEncoder()
    if encoder.c_make_encoder is not None:
        # The C encoder made once for every row (JSONEncoder.encode makes one per call: a
        # third of the time at 10,000 rows); the same text JSONEncoder().encode gives.
        encode_row = encoder.c_make_encoder(None, plain.default, encoder.encode_basestring_ascii, None,
                                            ": ", ", ", False, False, True)
        texts = ["".join(encode_row(row, 0)) for row in rows]
    else:
        texts = [plain.encode(row) for row in rows]
    body = ",\n  ".join(texts)
    sys.stdout.write(f"[\n  {body}\n]\n" if rows else "[]\n")


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]], title: str | None = None) -> None:
    """Print a plain table: no box, columns two spaces apart, one line a row however wide
    (easy to read and to grep). Laid out here, not by rich: rich measured every cell of every
    row, about 17 s of CPU for 10,000 images."""
    cells = [list(columns)] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() for line in cells]
    if title:
        lines.insert(0, title)
    if _styled():
        lines[1 if title else 0] = f"\033[1m{lines[1 if title else 0]}\033[0m"
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()


def tree(roots: Sequence[Any], children: Callable[[Any], Sequence[Any]],
         label: Callable[[Any], tuple[str, str]]) -> None:
    """Print each root and, nested under it, what ``children`` gives, one line each with guides
    (``├──``, ``└──``). ``label`` gives a node's name and a note shown dim on a terminal.
    Laid out here, not by rich, for the reason :func:`table` gives (10,000 clones: 2.7 s)."""
    unicode = (sys.stdout.encoding or "").lower().replace("-", "") in ("utf8", "utf8sig")
    branch, last, through, blank = (("├── ", "└── ", "│   ", "    ") if unicode
                                    else ("+-- ", "`-- ", "|   ", "    "))
    styled = _styled()
    lines: list[str] = []
    for root in roots:
        todo = [(root, "", "")]  # (node, its guide, the guide under it), depth first
        while todo:
            node, guide, under = todo.pop()
            name, note = label(node)
            note = f"\033[2m{note}\033[0m" if styled and note else note
            lines.append(f"{guide}{name}  {note}".rstrip() if note else f"{guide}{name}")
            kids = children(node)
            for place in range(len(kids) - 1, -1, -1):  # pushed last first: popped in order
                end = place == len(kids) - 1
                todo.append((kids[place], under + (last if end else branch),
                             under + (blank if end else through)))
    sys.stdout.write("".join(line + "\n" for line in lines))
    sys.stdout.flush()


def _styled() -> bool:
    """Whether stdout is a terminal that takes styles (bold, dim): not with ``NO_COLOR``."""
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def _cell(value: Any) -> str:
    """A value as one line of a table cell."""
    return "" if value is None else " ".join(str(value).splitlines())


def note(message: str) -> None:
    """A message for the person at the terminal (stderr, so stdout stays parseable)."""
    print(message, file=sys.stderr, flush=True)


class _Quiet:
    """What :func:`progress` gives when nobody watches: the same calls, nothing drawn."""

    task_ids = (0,)

    def __enter__(self) -> _Quiet:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass

    def advance(self, task: int, amount: float = 1) -> None:
        pass


def progress(description: str, total: int | None, unit: str = "") -> Progress | _Quiet:
    """A progress bar on stderr; nothing at all when stderr is not a terminal."""
    if not sys.stderr.isatty():
        return _Quiet()
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn()]
    bar = Progress(*columns, console=__getattr__("err"), transient=False)
    bar.add_task(description, total=total)
    return bar


class CopyMeter:
    """``meter(name, done, total)``: a line on stderr per copy, at most every ``every`` seconds,
    with how far it got and how fast: the bytes copied since its first report over the time
    since, so the first line has no speed yet, unless it is the last too (then the speed is
    counted from the meter's making). Thread-safe: clones are made by several workers at once."""

    def __init__(self, every: float = 1.0) -> None:
        import threading
        import time

        self.every = every
        self._made = time.monotonic()
        self._lock = threading.Lock()
        self._first: dict[str, tuple[float, int]] = {}
        self._shown: dict[str, float] = {}

    def __call__(self, name: str, done: int, total: int) -> None:
        import time

        with self._lock:
            now = time.monotonic()
            finished = total and done >= total
            started, done_then = self._first.setdefault(name, (self._made, 0) if finished else (now, done))
            if not finished and now - self._shown.get(name, -self.every) < self.every:
                return
            self._shown[name] = now
        percent = f" ({100 * done / total:.0f}%)" if total else ""
        speed = f" at {rate(done - done_then, now - started)}" if now > started else ""
        note(f"{name}: {size(done)} of {size(total)}{percent}{speed}")


def rate(done: int, seconds: float) -> str:
    """Throughput, for people: ``412.3 MiB/s``."""
    return f"{size(int(done / seconds)) if seconds > 0 else size(done)}/s"


def when(timestamp: str | None) -> str:
    """An ISO timestamp, shortened for tables (UTC, to the second)."""
    return timestamp[:19].replace("T", " ") if timestamp else ""


def size(num: int) -> str:
    """Bytes, for people."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if num < 1024 or unit == "TiB":
            return f"{num:.0f} {unit}" if unit == "B" else f"{num:.1f} {unit}"
        num /= 1024
    return str(num)
