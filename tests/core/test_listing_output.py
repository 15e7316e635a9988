"""What ``--json`` listings print: one row a line, the same text json's own encoder gives."""

from __future__ import annotations

import json

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
