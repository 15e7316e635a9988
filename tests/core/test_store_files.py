"""Several metadata files replaced at once: all of them or none, whether written one by one or together."""

from __future__ import annotations

from pathlib import Path

import pytest

from encompass_core.store import files


@pytest.mark.parametrize("count", [2, 64])  # below and above the count written by several threads
def test_every_file_is_replaced_and_nothing_is_left_over(tmp_path: Path, count: int) -> None:
    targets = {tmp_path / f"images-{i:02d}.json": f'{{"n": {i}}}'.encode() for i in range(count)}
    for path in targets:
        path.write_bytes(b'{"old": true}')

    files.replace_many(tmp_path / "journal.json", targets)

    assert {p: p.read_bytes() for p in targets} == targets
    assert all(Path(f"{p}.bak").read_bytes() == b'{"old": true}' for p in targets)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    assert not (tmp_path / "journal.json").exists()


@pytest.mark.parametrize("count", [2, 64])
def test_one_file_that_cannot_be_written_changes_none(tmp_path: Path, count: int) -> None:
    targets = {tmp_path / f"images-{i:02d}.json": b'{"new": true}' for i in range(count)}
    for path in targets:
        path.write_bytes(b'{"old": true}')
    targets[tmp_path / "missing-folder" / "machines.json"] = b"{}"  # its folder is not there

    with pytest.raises(FileNotFoundError):
        files.replace_many(tmp_path / "journal.json", targets)

    assert all(p.read_bytes() == b'{"old": true}' for p in targets if p.parent == tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    assert not (tmp_path / "journal.json").exists()
