"""VolumeCopy: a job of the subsystem whose progress the driver polls, recorded before it is
waited for, and found again (status, cancel, cleanup) when the process that started it died."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest
from ds4xxx_testing import HERE

from encompass_core.contracts import CloneProgress
from encompass_core.customization.openers import open_volume
from encompass_core.model import StorageJob
from encompass_core.records import CloneRequest
from encompass_core.testing import SOURCE_FILES, make_source_image

MIB = 1 << 20


@pytest.fixture
def master(driver, tmp_path):
    return driver.import_volume("debian", 0, make_source_image(tmp_path / "debian.raw", size_mib=8))


def test_a_volume_copy_is_announced_then_polled_to_the_end(driver, simulator, master):
    simulator.set(copy_rate=4 * MIB)  # 8 MiB: about two seconds of the subsystem's time
    events = []
    seen_during = []

    def advance(done: int) -> None:
        events.append(("advance", done))
        seen_during.append(simulator.state()["copies"] != {})

    progress = CloneProgress(advance, lambda job, text: events.append(("job", job, text)))
    request = CloneRequest(image="web01", index=0, mode="full", max_depth=8, source_image="debian")
    made = driver.clone_volume(master, driver, request, progress)

    assert events[0][:2] == ("job", "web01_0_P") and "VolumeCopy of logical drive debian_0_RO" in events[0][2]
    advances = [done for kind, done, *_ in events if kind == "advance"]
    assert sum(advances) == made.size == master.size
    assert len(advances) >= 2, "progress comes from polling the subsystem, step by step"
    assert any(seen_during), "the copy pair was there while the copy ran"
    assert made.location == "web01_0" and simulator.labels() == {"debian_0_RO", "web01_0"}
    assert simulator.state()["copies"] == {}  # the pair is removed once complete
    with driver.expose(made, writable=False) as ref, open_volume(ref, writable=False) as files:
        assert files.read("/etc/hostname") == SOURCE_FILES["etc/hostname"]


CLONE_AND_WAIT = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    from pathlib import Path
    from ds4xxx_testing import make_driver
    from encompass_core.contracts import CloneProgress
    from encompass_core.model import Volume
    from encompass_core.records import CloneRequest

    driver = make_driver(Path({folder!r}))
    master = Volume(index=0, pool="san", format="raw", location="debian_0_RO", size={size})
    def started(job, text):
        print(job, flush=True)
    request = CloneRequest(image="web01", index=0, mode="full", max_depth=8, source_image="debian")
    driver.clone_volume(master, driver, request, CloneProgress(None, started))
""")


def start_and_kill_a_copy(simulator, master, tmp_path) -> str:
    """A clone process that dies (SIGKILL) once its VolumeCopy runs; the job's id."""
    simulator.set(copy_rate=MIB // 4)  # 32 s for 8 MiB: still running when looked at
    script = CLONE_AND_WAIT.format(tests=str(HERE), folder=str(tmp_path), size=master.size)
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                               env={**os.environ})
    try:
        job_id = process.stdout.readline().strip()
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert job_id == "web01_0_P", "the clone process announced its job"
    return job_id


def test_a_copy_left_by_a_dead_process_is_found_and_cancelled(driver, simulator, master, tmp_path):
    job_id = start_and_kill_a_copy(simulator, master, tmp_path)
    job = StorageJob(pool="san", index=0, id=job_id, description="VolumeCopy")
    status = driver.job_status(job)
    assert status.state == "running" and 0 <= status.percent < 100
    assert "debian_0_RO -> web01_0_P: In progress" in status.message

    driver.cancel_job(job)
    assert simulator.labels() == {"debian_0_RO"}
    assert simulator.state()["copies"] == {}
    assert driver.job_status(job).state == "failed"  # gone: nothing left to stop
    assert driver.cleanup("web01") == []


def test_cleanup_removes_a_half_made_copy_and_utility_mappings(driver, simulator, master, tmp_path):
    start_and_kill_a_copy(simulator, master, tmp_path)
    # A leftover mapping to the utility host too, as a killed customization leaves it.
    simulator.smcli('set logicalDrive ["debian_0_RO"] logicalUnitNumber=7 host="encompass-utility";')
    assert driver.cleanup("web01") == ["deleted half-made logical drive web01_0_P of pool 'san'"]
    assert driver.cleanup("debian") == ["unmapped logical drive debian_0_RO from the utility host"]
    assert simulator.labels() == {"debian_0_RO"} and simulator.mappings() == {}
    assert simulator.state()["copies"] == {}


def test_a_copy_that_completed_meanwhile_is_done(driver, simulator, master):
    # The same commands the driver issues, by hand: the job's status as the subsystem says.
    done = simulator.smcli(f'create logicalDrive array=1 capacity={master.size} Bytes '
                           'userLabel="web01_0_P"; create volumeCopy source="debian_0_RO" '
                           'target="web01_0_P";')
    assert done.returncode == 0, done.stdout
    status = driver.job_status(StorageJob(pool="san", index=0, id="web01_0_P"))
    assert (status.state, status.percent) == ("done", 100.0)
