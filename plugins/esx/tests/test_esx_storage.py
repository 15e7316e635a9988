"""The esx pool against vcsim beyond the conformance suite: the layout ESX reads (descriptor and
flat extent), a full clone that is a vSphere task recorded as a job, and a server that stops
in the middle of an exposure or of a clone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from vcsim_testing import PASSWORD, pool_driver, start_vcsim

from encompass_core.contracts import CloneProgress
from encompass_core.customization.openers import open_volume
from encompass_core.errors import DriverError, NotFound
from encompass_core.model import StorageJob
from encompass_core.records import CloneRequest
from encompass_core.testing import make_source_image

ENCOMPASS = Path(sys.executable).with_name("encompass")


def test_a_volume_is_a_vmfs_descriptor_and_its_flat_extent(pool, tmp_path):
    master = pool.import_volume("m", 0, make_source_image(tmp_path / "m.raw", size_mib=4))
    path = master.location.removeprefix("[LocalDS_0] ")
    text = pool.files.read_text(path)
    assert 'createType="vmfs"' in text and 'RW 8192 VMFS "vol0-flat.vmdk"' in text
    assert pool.files.size(path.replace(".vmdk", "-flat.vmdk")) == 4 << 20
    assert master.data == {"datastore": "LocalDS_0", "datacenter": "DC0"}


def test_a_full_clone_is_a_recorded_vsphere_task_and_names_its_own_extent(pool, tmp_path):
    master = pool.import_volume("m", 0, make_source_image(tmp_path / "m.raw"))
    jobs, done = [], []
    made = pool.clone_volume(master, pool, CloneRequest("c1", 0, "full", 8, "m"),
                             CloneProgress(done.append, lambda job, what: jobs.append((job, what))))
    assert len(jobs) == 1 and jobs[0][0].startswith("task-") and "copy" in jobs[0][1]
    assert sum(done) == master.size
    assert pool.job_status(StorageJob(pool=pool.pool, index=0, id=jobs[0][0])).state == "done"
    with pytest.raises(NotFound):
        pool.job_status(StorageJob(pool=pool.pool, index=0, id="task-999999"))
    text = pool.files.read_text(made.location.removeprefix("[LocalDS_0] "))
    assert '"vol0-flat.vmdk"' in text  # vcsim copied the master's descriptor as it was


@pytest.fixture
def own_vcsim(vcsim_program):
    """A vcsim of this test's own, which it may stop."""
    os.environ["VCSIM_PASSWORD"] = PASSWORD
    with tempfile.TemporaryDirectory(prefix="enc-vcsim-stop-") as folder, \
            start_vcsim(Path(folder) / "vcsim", machines=1) as server:
        yield server


def test_a_server_that_stops_during_an_exposure_is_one_line(own_vcsim, tmp_path):
    pool = pool_driver(tmp_path, own_vcsim.settings(datastore="LocalDS_0"))
    master = pool.import_volume("m", 0, make_source_image(tmp_path / "m.raw"))
    clone = pool.clone_volume(master, pool, CloneRequest("c1", 0, "full", 8, "m"), CloneProgress())
    with pytest.raises(DriverError) as refused:  # noqa: PT012 - the stop is inside the block
        with pool.expose(clone, writable=True) as ref, open_volume(ref, writable=True) as files:
            files.write("/etc/hostname", b"web01\n")
            own_vcsim.stop()
    message = str(refused.value)
    assert "\n" not in message and "pool 'ds0'" in message and "127.0.0.1" in message
    assert not Path(ref.path).exists()  # the download is removed all the same


def test_a_clone_onto_a_pool_whose_server_stopped_is_an_error_not_a_stuck_image(own_vcsim, tmp_path):
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENCOMPASS_")}
    env.update(ENCOMPASS_HOME=str(home), VCSIM_PASSWORD=PASSWORD)

    def cli(*args):
        return subprocess.run([str(ENCOMPASS), *map(str, args)], env=env, capture_output=True,
                              text=True, timeout=300, check=False)

    assert cli("init").returncode == 0
    with open(home / "encompass.toml", "a", encoding="utf-8") as config:
        config.write("\n[pools.ds1]\n" + "".join(
            f"{key} = {json.dumps(value)}\n"
            for key, value in own_vcsim.settings(datastore="LocalDS_0").items()))
    assert cli("master", "import", "demo", make_source_image(tmp_path / "m.raw")).returncode == 0
    own_vcsim.stop()
    done = cli("clone", "demo", "web01", "--pool", "ds1", "--mode", "full")
    assert done.returncode == 7, done.stderr
    reason = next(line for line in done.stderr.splitlines() if line.strip().startswith("web01:"))
    assert "pool 'ds1'" in reason and "connection refused" in reason
    shown = cli("image", "show", "web01", "--json")
    # Either the half-made clone is gone, or it is recorded in error with the reason.
    assert shown.returncode == 3 or json.loads(shown.stdout)["state"] == "error"


def test_cleanup_removes_a_flat_extent_a_killed_upload_left(pool, tmp_path):
    master = pool.import_volume("m", 0, make_source_image(tmp_path / "m.raw"))
    partial = f"{pool.folder}/web01/vol0-flat.vmdk"  # the descriptor comes last: never written
    pool.files.upload(make_source_image(tmp_path / "p.raw"), partial)
    assert "web01" not in [found.image for found in pool.discover()]
    assert pool.cleanup("web01") == [f"removed [LocalDS_0] {partial} (a partial upload)"]
    assert not pool.files.exists(partial)
    assert pool.files.exists(master.location.removeprefix("[LocalDS_0] "))
