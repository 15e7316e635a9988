"""A large file written to the export is committed while it is written (``flushing``): the
same bytes land, COMMITs go out behind the writes on a connection of their own, which ends with
the copy, and a server stopped mid-copy still fails in one line and leaves nothing.

The thresholds are lowered so that a few MiB are "large" (the real ones are 256 MiB and 64 MiB).
"""

from __future__ import annotations

import os
import threading

import pytest
from encompass_nfs import flushing
from nfs_testing import make_driver

from encompass_core.contracts import CloneProgress
from encompass_core.errors import DriverError
from encompass_core.records import CloneRequest

MIB = 1 << 20


@pytest.fixture
def commits(monkeypatch) -> list[int]:
    """Flush behind from 8 MiB on, every 4 MiB; the COMMITs each flusher had answered."""
    monkeypatch.setattr(flushing, "WORTH_IT", 8 * MIB)
    monkeypatch.setattr(flushing, "FLUSH_EVERY", 4 * MIB)
    answered: list[int] = []
    close = flushing.FlushBehind.close

    def counted_close(self) -> None:
        close(self)
        answered.append(self.commits)

    monkeypatch.setattr(flushing.FlushBehind, "close", counted_close)
    return answered


@pytest.fixture
def driver(server, tmp_path):
    made = make_driver(tmp_path, url=server.url)
    yield made
    made.close()


def flushers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "nfs-flush-behind"]


def test_a_large_upload_is_committed_behind_the_writes_and_lands_whole(server, driver, tmp_path, commits):
    data = os.urandom(40 * MIB)
    (tmp_path / "big.raw").write_bytes(data)

    volume = driver.import_volume("big", 0, tmp_path / "big.raw")

    assert (server.export_dir / "big" / "vol0.raw").read_bytes() == data
    assert volume.size == 40 * MIB
    assert len(commits) == 1 and commits[0] >= 2, commits  # behind the writes, not only at the end
    assert flushers() == []


def test_a_full_clone_within_the_export_is_committed_behind_too(server, driver, tmp_path, commits):
    data = os.urandom(24 * MIB)
    (tmp_path / "base.raw").write_bytes(data)
    master = driver.import_volume("base", 0, tmp_path / "base.raw")
    commits.clear()

    driver.clone_volume(master, driver, CloneRequest("web01", 0, "full", 8, "base"), CloneProgress())

    assert (server.export_dir / "web01" / "vol0.raw").read_bytes() == data
    assert len(commits) == 1 and commits[0] >= 1, commits


def test_a_small_file_is_committed_once_at_the_end(server, driver, tmp_path, commits):
    (tmp_path / "small.raw").write_bytes(os.urandom(4 * MIB))
    driver.import_volume("small", 0, tmp_path / "small.raw")
    assert commits == []  # no flusher, no second connection


def test_a_server_stopped_mid_copy_still_fails_in_one_line_and_leaves_nothing(server, driver, tmp_path,
                                                                             commits):
    (tmp_path / "big.raw").write_bytes(os.urandom(48 * MIB))
    seen: list[int] = []

    def stop_after_a_few_mib(done: int) -> None:
        seen.append(done)
        if sum(seen) >= 12 * MIB and server.server is not None:
            server.stop_server()

    with pytest.raises(DriverError) as failed:
        driver.import_volume("big", 0, tmp_path / "big.raw", progress=stop_after_a_few_mib)
    message = str(failed.value)
    assert "\n" not in message and "pool 'nas'" in message and "stopped answering" in message
    assert len(commits) == 1 and flushers() == []  # there was a flusher; it ended with the copy
    server.start()
    driver.cleanup("big")
    assert server.contents() == []
