"""What ``--json`` listings print: one row a line, the same text json's own encoder gives."""

from __future__ import annotations

import io
import json
import sys

from encompass_core.cli import output


def test_rows_are_printed_one_a_line_as_json_encodes_them(capsys) -> None:
    rows = [{"name": "web01", "state": "ready", "size": 1 << 40, "outdated": False, "machine": None},
            {"name": "web02", "state": "error", "size": 0, "outdated": True,
             "error": 'clone: qemu-img said "no"\non line 2, in pool café \\ ☃'}]
    output.emit_rows(rows)
    printed = capsys.readouterr().out
    assert printed == "[\n" + ",\n".join("  " + json.dumps(row) for row in rows) + "\n]\n"
    assert json.loads(printed) == rows
    assert printed.count("\n") == len(rows) + 2  # a row a line: easy to grep


def test_no_rows_is_an_empty_list(capsys) -> None:
    output.emit_rows([])
    assert capsys.readouterr().out == "[]\n"


def test_a_table_is_one_line_a_row_with_columns_two_spaces_apart(capsys) -> None:
    output.table(("NAME", "STATE", "ERROR"), [("web01", "ready", None),
                                              ("a-much-longer-name", "error", "line one\nline two")])
    assert capsys.readouterr().out == (
        "NAME                STATE  ERROR\n"
        "web01               ready\n"
        "a-much-longer-name  error  line one line two\n")


def test_a_tree_draws_nested_children_in_order_with_guides(monkeypatch) -> None:
    kids = {"base": ["a", "b"], "a": ["a1", "a2"], "a1": ["a1x"]}

    def draw(encoding: str) -> str:  # a pipe whose encoding is ``encoding``
        raw = io.BytesIO()
        stream = io.TextIOWrapper(raw, encoding=encoding)
        monkeypatch.setattr(sys, "stdout", stream)
        output.tree(["base", "other"], lambda n: kids.get(n, []), lambda n: (n, f"note of {n}"))
        return raw.getvalue().decode(encoding)

    assert draw("utf-8") == (
        "base  note of base\n"
        "├── a  note of a\n"
        "│   ├── a1  note of a1\n"
        "│   │   └── a1x  note of a1x\n"
        "│   └── a2  note of a2\n"
        "└── b  note of b\n"
        "other  note of other\n")
    assert draw("ascii").splitlines()[1:4] == ["+-- a  note of a", "|   +-- a1  note of a1",
                                               "|   |   `-- a1x  note of a1x"]


def test_a_copy_meter_tells_the_speed_of_what_it_saw_copied(monkeypatch, capsys) -> None:
    clock = iter([99.0, 100.0, 100.5, 102.0, 103.0])
    monkeypatch.setattr("time.monotonic", lambda: next(clock))
    meter = output.CopyMeter(every=1.0)  # made at 99.0
    meter("web1", 4 << 20, 64 << 20)   # the first report: no time has passed, no speed yet
    meter("web1", 8 << 20, 64 << 20)   # within the second: not shown
    meter("web1", 36 << 20, 64 << 20)  # 32 MiB in the 2 s since the first report
    meter("web2", 8 << 20, 8 << 20)    # its one report is its last: 8 MiB since the meter's making
    assert capsys.readouterr().err.splitlines() == [
        "web1: 4.0 MiB of 64.0 MiB (6%)",
        "web1: 36.0 MiB of 64.0 MiB (56%) at 16.0 MiB/s",
        "web2: 8.0 MiB of 8.0 MiB (100%) at 2.0 MiB/s",
    ]
