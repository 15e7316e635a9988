"""The driver contract, second edition, as a plugin author and an administrator meet it.

Plugins here are real distributions on PYTHONPATH (entry points and all), used through the real
``encompass`` script: a storage driver keeping VMDK-like volumes with driver data, a chassis of
physical machines that take SAN LUNs only, and a plugin whose registration hook raises.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from test_plugins import fake_distribution

from conftest import ENCOMPASS, assert_one_line_error, cli_env
from encompass_core.context import Context
from encompass_core.model import Image, Volume

DATASTORE_PLUGIN = """
    import contextlib, json, os, time
    from pathlib import Path
    from encompass_core import hookimpl
    from encompass_core.contracts import (Attachment, DiscoveredVolume, PlatformCapabilities,
        JobStatus, PlatformDriver, StorageCapabilities, StorageDriver)
    from encompass_core.customization.access import VolumeRef
    from encompass_core.errors import NotFound
    from encompass_core.model import Machine, Volume, HostPort
    from encompass_core.records import PlatformDriverRecord, StorageDriverRecord
    from encompass_core.settings import Setting

    class Datastore(StorageDriver):
        '''Volumes as files named like VMDKs, each remembered with datastore data.'''
        capabilities = StorageCapabilities(formats=("vmdk",), clone_modes=("full",),
                                           attach_kinds=("datastore",), imports=False)

        def __init__(self, section, config):
            self.pool = section.name
            self.root = Path(section.settings["folder"])
            self.root.mkdir(parents=True, exist_ok=True)

        def delete_volume(self, volume):
            with contextlib.suppress(FileNotFoundError):
                (self.root / volume.data["file"]).unlink()
            (self.root / "deleted.log").open("a").write(volume.data["file"] + "\\n")

        @contextlib.contextmanager
        def expose(self, volume, writable):
            yield VolumeRef(path=str(self.root / volume.data["file"]), format=volume.format)

        def discover(self):
            return []

        def clone_volume(self, source, source_driver, request, progress):
            # A copy the storage system runs as a job of its own, for hours (a VolumeCopy).
            job = self.root / f"job-{request.image}"
            job.write_text("running")
            progress.started_job(job.name, f"copy of {source.location}")
            while job.read_text() == "running":
                time.sleep(0.05)
            raise RuntimeError("job " + job.read_text())

        def job_status(self, job):
            return JobStatus((self.root / job.id).read_text())

        def cancel_job(self, job):
            (self.root / job.id).write_text("cancelled")

    class Chassis(PlatformDriver):
        '''Blades in slots: physical, boot from a SAN LUN only.'''
        capabilities = PlatformCapabilities(kind="physical", attach_kinds=("iscsi", "fc"),
                                            boot_modes=("san",), boot_device=("persistent",))

        def __init__(self, section, config):
            self.platform = section.name

        def discover(self):
            return [Machine(name="blade1", platform=self.platform, kind="physical", power="off",
                            host_ports=(HostPort("fc", "21000024ff000001"),),
                            addresses=("192.0.2.10",))]

    class FileBlades(PlatformDriver):
        '''Physical machines that boot disk files (as a PXE-booted NFS client would).'''
        capabilities = PlatformCapabilities(kind="physical", attach_kinds=("file",), boot_modes=("disk",))

        def __init__(self, section, config):
            self.platform = section.name

        def discover(self):
            return [Machine(name="pc1", platform=self.platform, kind="physical", power="off")]

        def deploy(self, machine, image, attachments):
            return Machine(name=machine.name, platform=self.platform, kind="physical", power="on",
                           disks=tuple(a.address for a in attachments))

        def undeploy(self, machine, image):
            return Machine(name=machine.name, platform=self.platform, kind="physical", power="off")

    @hookimpl
    def encompass_storage_drivers():
        yield StorageDriverRecord(name="fakeds", factory=Datastore, settings=(
            Setting("folder", str, required=True), Setting("password", secret=True)))

    @hookimpl
    def encompass_platform_drivers():
        yield PlatformDriverRecord(name="fakechassis", factory=Chassis)
        yield PlatformDriverRecord(name="fakeblades", factory=FileBlades)
"""

FAILING_HOOK = """
    from encompass_core import hookimpl

    @hookimpl
    def encompass_storage_drivers():
        raise RuntimeError("cannot reach the licence server")
"""


def site_env(site: Path) -> dict[str, str]:
    """The environment that puts ``site`` on the path (in front of whatever is there)."""
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}


@pytest.fixture
def plugin_env(tmp_path: Path) -> dict[str, str]:
    site = tmp_path / "site"
    site.mkdir()
    fake_distribution(site, "fake-backends", {"fakeback": "fakeback"}, {"fakeback": DATASTORE_PLUGIN})
    return site_env(site)


def add_config(home: Path, text: str) -> None:
    with (home / "encompass.toml").open("a") as config:
        config.write("\n" + text + "\n")


def store_foreign_image(home: Path, folder: Path) -> None:
    """A clone whose only volume is a VMDK on the fake datastore, with driver data, stored as a
    plugin's clone would leave it."""
    (folder / "esx1.vmdk").write_bytes(b"KDMV")
    store = Context(home=home).store
    with store.transaction() as tx:
        base = tx.image("base")
        tx.add_image(Image(
            name="esx1", kind="clone", state="ready", master="base", parent="base", master_version=1,
            hardware=base.hardware, software=base.software,
            volumes=(Volume(index=0, pool="ds", format="vmdk", location="[LocalDS_0] esx1/esx1.vmdk",
                            size=4096, data={"datastore": "LocalDS_0", "datacenter": "DC0",
                                             "file": "esx1.vmdk", "uuid": "6000C29a-0001"}),)))


def test_a_volume_format_the_core_never_heard_of_keeps_every_command_working(
        run_cli, master, encompass_home, plugin_env, tmp_path) -> None:
    folder = tmp_path / "datastore"
    add_config(encompass_home, f'[pools.ds]\ndriver = "fakeds"\nfolder = "{folder}"')
    assert run_cli("image", "list", env=plugin_env).code == 0  # the pool is built when used
    folder.mkdir()
    store_foreign_image(encompass_home, folder)

    listed = {row["name"]: row for row in run_cli("image", "list", "--json", env=plugin_env).json()}
    assert listed["esx1"]["state"] == "ready"
    shown = run_cli("image", "show", "esx1", "--json", env=plugin_env).json()
    assert shown["volumes"][0]["format"] == "vmdk"
    assert shown["volumes"][0]["data"] == {"datastore": "LocalDS_0", "datacenter": "DC0",
                                           "file": "esx1.vmdk", "uuid": "6000C29a-0001"}
    assert "esx1" in run_cli("image", "tree", env=plugin_env).out
    made = run_cli("clone", "base", "web1", env=plugin_env)
    assert made.code == 0, made.err
    assert run_cli("repair", env=plugin_env).code == 0
    # What no opener can reach is refused in one line, and the clone is left as it was.
    cat = run_cli("image", "cat", "esx1", "/etc/hostname", env=plugin_env)
    assert_one_line_error(cat, "vmdk")
    assert run_cli("image", "show", "esx1", "--json", env=plugin_env).json()["state"] == "ready"

    deleted = run_cli("image", "delete", "esx1", env=plugin_env)
    assert deleted.code == 0, deleted.err
    assert (folder / "deleted.log").read_text() == "esx1.vmdk\n"
    assert "esx1" not in {row["name"] for row in run_cli("image", "list", "--json").json()}


def test_a_plugin_failing_in_its_registration_hook_leaves_local_usable(run_cli, raw_disk, tmp_path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    fake_distribution(site, "licensed-pool", {"licensed": "licensed"}, {"licensed": FAILING_HOOK})
    env = site_env(site)

    imported = run_cli("master", "import", "base", raw_disk, env=env)
    assert imported.code == 0, imported.err
    assert imported.err.strip().splitlines()[0] == (
        "encompass: plugin 'licensed' (licensed-pool) failed in encompass_storage_drivers: "
        "RuntimeError: cannot reach the licence server; its drivers are left out "
        "(-v shows the traceback)")
    assert run_cli("clone", "base", "web1", env=env).code == 0
    rows = {row["name"]: row for row in run_cli("plugins", "--json", env=env).json()}
    assert rows["licensed"]["status"] == "failed"
    assert "licence server" in rows["licensed"]["error"]
    assert rows["local"]["status"] == "active"


@pytest.mark.parametrize(("table", "words"), [
    ('[openers.loop]\nallow_loop_mount = "false"', ["[openers.loop]", "'allow_loop_mount'", "true or false"]),
    ('[pools.local]\ndriver = "local"\npath = "pool"\nconcurrency = -3', ["[pools.local]", "'concurrency'",
                                                                          "at least 1"]),
    ('[pools.local]\ndriver = "local"\npath = "pool"\ncolour = "blue"', ["[pools.local]",
                                                                         "unknown setting 'colour'"]),
    ('[pools.ds]\ndriver = "fakeds"\nfolder = "/tmp/x"\npassword = 1234', ["[pools.ds]", "secret 'password'",
                                                                           "password_env"]),
    ('[pools.ds]\ndriver = "fakeds"\nfolder = "/tmp/x"\napi_key = "k-123"', ["[pools.ds]",
                                                                             "secret 'api_key'"]),
    ('[pools.ds]\ndriver = "fakeds"', ["[pools.ds]", "needs the setting 'folder'"]),
    ('[openers.nosuch]\nx = 1', ["[openers.nosuch]", "no such volume opener"]),
])
def test_settings_are_checked_before_anything_runs(run_cli, encompass_home, raw_disk, plugin_env,
                                                    table, words) -> None:
    config = encompass_home / "encompass.toml"
    text = config.read_text()
    if table.startswith("[pools.local]"):
        text = text[:text.index("[pools.local]")]  # replace the default pool's table
    config.write_text(text + "\n" + table + "\n")

    result = run_cli("master", "import", "base", raw_disk, env=plugin_env)

    assert result.code == 5
    assert_one_line_error(result, str(config), *words)
    assert "1234" not in result.err and "k-123" not in result.err
    assert not (encompass_home / "pool" / "base").exists()  # nothing ran


def test_a_physical_platform_refuses_new_machines_and_files_before_touching_anything(
        run_cli, master, encompass_home, plugin_env) -> None:
    add_config(encompass_home, '[platforms.chassis]\ndriver = "fakechassis"')
    assert run_cli("clone", "base", "web1", env=plugin_env).code == 0

    new = run_cli("deploy", "web1", "--new", "--platform", "chassis", env=plugin_env)
    assert new.code == 4
    assert_one_line_error(new, "platform 'chassis' cannot create machines", "physical")

    found = run_cli("discover", "--platform", "chassis", "--apply", "--json", env=plugin_env)
    assert found.code == 0, found.err
    blade = run_cli("machine", "show", "blade1", "--json", env=plugin_env).json()
    assert blade["host_ports"] == [{"kind": "fc", "address": "21000024ff000001"}]
    assert blade["addresses"] == ["192.0.2.10"]

    on_blade = run_cli("deploy", "web1", "blade1", env=plugin_env)
    assert on_blade.code == 4
    assert_one_line_error(on_blade, "take iscsi, fc volumes", "pool 'local' offers file, dir")
    assert run_cli("image", "show", "web1", "--json").json()["state"] == "ready"
    blade = run_cli("machine", "show", "blade1", "--json", env=plugin_env).json()
    assert blade["image"] is None


def test_repair_cancels_the_storage_job_of_a_killed_clone(run_cli, master, encompass_home, plugin_env,
                                                          tmp_path) -> None:
    folder = tmp_path / "datastore"
    add_config(encompass_home, f'[pools.ds]\ndriver = "fakeds"\nfolder = "{folder}"')
    env = {**cli_env(encompass_home), **plugin_env}
    cloning = subprocess.Popen([str(ENCOMPASS), "clone", "base", "copy1", "--pool", "ds", "--mode", "full"],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        job = folder / "job-copy1"
        deadline = time.monotonic() + 60
        while not (job.exists() and run_cli("image", "show", "copy1", "--json").json()["jobs"]):
            assert time.monotonic() < deadline, "the clone never recorded its storage job"
            time.sleep(0.1)
    finally:
        cloning.kill()
        cloning.wait()
    stuck = run_cli("repair", "--dry-run", env=plugin_env)
    assert "storage job job-copy1 on pool 'ds'" in stuck.out
    assert job.read_text() == "running"

    repaired = run_cli("repair", env=plugin_env)

    assert repaired.code == 0, repaired.err
    assert job.read_text() == "cancelled"
    assert "copy1" not in {row["name"] for row in run_cli("image", "list", "--json").json()}


def test_removing_a_physical_machine_is_refused_before_it_is_undeployed(
        run_cli, master, encompass_home, plugin_env) -> None:
    add_config(encompass_home, '[platforms.office]\ndriver = "fakeblades"')
    assert run_cli("clone", "base", "web1", env=plugin_env).code == 0
    assert run_cli("discover", "--platform", "office", "--apply", env=plugin_env).code == 0
    deployed = run_cli("deploy", "web1", "pc1", env=plugin_env)
    assert deployed.code == 0, deployed.err

    removed = run_cli("undeploy", "web1", "--remove-machine", env=plugin_env)

    assert removed.code == 4
    assert_one_line_error(removed, "platform 'office' cannot remove machine 'pc1'")
    assert run_cli("image", "show", "web1", "--json").json()["state"] == "deployed"
    assert run_cli("machine", "show", "pc1", "--json", env=plugin_env).json()["image"] == "web1"
    assert run_cli("undeploy", "web1", env=plugin_env).code == 0
