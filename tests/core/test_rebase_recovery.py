"""Nothing is lost when a rollback, a discard of old volumes or a master version's retirement is
killed half-way (SIGKILL between the record and the files): every file in the pool still has a
record owning it, and ``encompass repair`` finishes the removal. A deployed clone whose rebase
was killed is deployed again on its machine by repair, as the rebase would have done."""

from __future__ import annotations

import contextlib
import json
import subprocess
from pathlib import Path

import pytest
import test_rebase
from test_plugins import fake_distribution, on_path
from test_rebase import SECRET_NEW, cat, kill_stalled, show, stalled

from conftest import assert_one_line_error

clones = test_rebase.clones  # the fixture: master base (v1, then v2), clones web1 and web2

#: The local pool's delete, stalled in the tests to kill an operation between its record and files.
DELETE = "encompass_core.drivers.local.LocalStorageDriver.delete_volume"


def rebased(run_cli, name: str) -> dict:
    """Rebase ``name`` onto version 2 (it keeps its version-1 volumes); its record before."""
    before = show(run_cli, name)
    done = run_cli("rebase", name, "--set", f"rootpw={SECRET_NEW}")
    assert done.code == 0, done.err
    return before


def recorded_locations(run_cli) -> set[Path]:
    """Every volume location some record holds (current, kept versions, kept for a rollback,
    being removed): what a user reads with ``image list`` and ``image show``."""
    found = set()
    for row in run_cli("image", "list", "--json").json():
        image = show(run_cli, row["name"])
        volumes = [*image["volumes"], *image["removing"],
                   *(image["previous"] or {}).get("volumes", ()),
                   *(v for version in image["versions"] for v in version["volumes"])]
        found |= {Path(v["location"]) for v in volumes}
    return found


def assert_no_orphan(run_cli, pool_dir: Path) -> None:
    """Every file in the pool belongs to a recorded volume, and discovery finds nothing new."""
    owned = recorded_locations(run_cli)
    for path in pool_dir.rglob("*"):
        if path.is_file():
            assert path in owned or owned & set(path.parents), f"{path}: no record owns it"
    report = run_cli("discover", "--pool", "local", "--json")
    assert report.code == 0, report.err
    assert [(f["name"], f["status"]) for f in report.json() if f["status"] != "matched"] == []


def repaired(run_cli, name: str) -> str:
    """Run ``encompass repair``; what it says it did to ``name``."""
    done = run_cli("repair", "--json")
    assert done.code == 0, done.err
    actions = {s["name"]: s["action"] for s in done.json()["images"]}
    assert run_cli("repair", "--json").json()["images"] == []  # nothing left stuck
    return actions[name]


def test_a_rollback_killed_before_or_after_its_record_is_undone_or_finished_by_repair(
        run_cli, clones, encompass_home, pool_dir):
    before = rebased(run_cli, "web1")
    after = show(run_cli, "web1")
    new_volume = Path(after["volumes"][0]["location"])

    # Killed before it changed anything: repair puts it back as it was, rebased.
    kill_stalled(encompass_home, "encompass_core.operations.holding.save", "rebase", "web1", "--rollback")
    assert show(run_cli, "web1")["state"] == "rebasing"
    assert repaired(run_cli, "web1").startswith("-> ready")
    undone = show(run_cli, "web1")
    assert (undone["state"], undone["master_version"], undone["volumes"]) == ("ready", 2, after["volumes"])
    assert undone["previous"]["volumes"] == before["volumes"] and new_volume.exists()
    assert_no_orphan(run_cli, pool_dir)

    # Killed between its record and the files: the record owns the rebased volume until repair
    # removes it; the clone is rolled back.
    kill_stalled(encompass_home, DELETE, "rebase", "web1", "--rollback")
    held = show(run_cli, "web1")
    assert (held["state"], held["master_version"], held["previous"]) == ("rebasing", 1, None)
    assert [v["location"] for v in held["removing"]] == [str(new_volume)] and new_volume.exists()
    assert_no_orphan(run_cli, pool_dir)  # what a user sees before repair: nothing unowned

    assert "the 1 volume(s) it was removing removed" in repaired(run_cli, "web1")
    web1 = show(run_cli, "web1")
    assert (web1["state"], web1["master_version"], web1["volumes"]) == ("ready", 1, before["volumes"])
    assert (web1["previous"], web1["removing"]) == (None, [])
    assert web1["applied"].keys() == before["applied"].keys()
    assert not new_volume.exists()
    assert_no_orphan(run_cli, pool_dir)
    assert cat(run_cli, "web1", "/etc/release") == "v1\n"
    assert cat(run_cli, "web1", "/rows", volume=1) == "web1's own rows\n"
    assert {r["name"]: r["state"] for r in run_cli("image", "list", "--json").json()}["web1"] == "ready"
    assert run_cli("rebase", "web1", "--set", f"rootpw={SECRET_NEW}").code == 0  # as if nothing happened


def test_a_discard_killed_half_way_is_finished_by_repair(run_cli, clones, encompass_home, pool_dir):
    before = rebased(run_cli, "web1")
    old_volume = Path(before["volumes"][0]["location"])
    data_volume = Path(before["volumes"][1]["location"])  # carried over: never removed

    kill_stalled(encompass_home, DELETE, "rebase", "web1", "--discard-old")

    held = show(run_cli, "web1")
    assert (held["state"], held["previous"], held["master_version"]) == ("rebasing", None, 2)
    assert [v["location"] for v in held["removing"]] == [str(old_volume)] and old_volume.exists()
    assert_no_orphan(run_cli, pool_dir)
    assert "the 1 volume(s) it was removing removed" in repaired(run_cli, "web1")
    web1 = show(run_cli, "web1")
    assert (web1["state"], web1["previous"], web1["removing"], web1["master_version"]) == (
        "ready", None, [], 2)
    assert not old_volume.exists() and data_volume.exists()
    assert_no_orphan(run_cli, pool_dir)
    assert cat(run_cli, "web1", "/etc/release") == "v2\n"
    assert cat(run_cli, "web1", "/rows", volume=1) == "web1's own rows\n"


@contextlib.contextmanager
def undeletable(path: Path):
    """``path`` made immutable (``chattr +i``: even root cannot unlink it) for the block: a pool
    that refuses a delete."""
    subprocess.run(["chattr", "+i", str(path)], check=True)
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def test_a_removal_the_pool_refused_is_done_by_repair_once_it_can(run_cli, clones, pool_dir):
    before = rebased(run_cli, "web1")
    old_volume = Path(before["volumes"][0]["location"])

    with undeletable(old_volume):
        failed = run_cli("rebase", "web1", "--discard-old")
        assert failed.code != 0 and len(failed.err.strip().splitlines()) == 1, failed.err
        assert str(old_volume) in failed.err
        web1 = show(run_cli, "web1")
        assert web1["state"] == "error"
        assert [v["location"] for v in web1["removing"]] == [str(old_volume)] and old_volume.exists()
        assert_no_orphan(run_cli, pool_dir)  # still owned: discover says "being removed"
        assert "encompass repair removes them once the pool can" in run_cli("image", "show", "web1").out

        dry = run_cli("repair", "--dry-run", "--json").json()["removals"]
        assert [(r["name"], r["volumes"], r["action"]) for r in dry] == [
            ("web1", [str(old_volume)], "-> removed")]
        still = run_cli("repair", "--json")  # the pool still refuses: said, and kept
        assert still.code == 0, still.err
        [refused] = still.json()["removals"]
        assert refused["action"].startswith("not removed:") and "repair again" in refused["action"]
        assert old_volume.exists() and show(run_cli, "web1")["removing"] != []
        early = run_cli("image", "enable", "web1")  # it would keep naming them, ready, for ever
        assert early.code == 4
        assert_one_line_error(early, "still names 1 volume(s)", str(old_volume), "encompass repair first")
        assert show(run_cli, "web1")["state"] == "error"

    shown = run_cli("repair")  # the pool takes deletes again
    assert shown.code == 0, shown.err
    assert "Volumes failed operations left to remove" in shown.out and str(old_volume) in shown.out
    web1 = show(run_cli, "web1")
    assert (web1["state"], web1["removing"], web1["master_version"]) == ("error", [], 2)
    assert not old_volume.exists()
    assert_no_orphan(run_cli, pool_dir)
    assert run_cli("repair", "--json").json()["removals"] == []  # nothing left to do
    history = run_cli("image", "history", "web1").out
    assert "the 1 volume(s) a failed operation left to remove removed" in history

    assert run_cli("image", "enable", "web1").code == 0
    assert cat(run_cli, "web1", "/etc/release") == "v2\n"
    assert cat(run_cli, "web1", "/rows", volume=1) == "web1's own rows\n"


def test_a_retire_killed_between_two_volumes_is_finished_by_repair(run_cli, clones, encompass_home,
                                                                   pool_dir):
    for name in clones:  # nothing derives from version 1 any more
        rebased(run_cli, name)
        assert run_cli("rebase", name, "--discard-old").code == 0
    version1 = [Path(v["location"]) for v in show(run_cli, "base")["versions"][0]["volumes"]]
    assert len(version1) == 2 and all(p.exists() for p in version1)

    kill_stalled(encompass_home, DELETE, "master", "retire", "base", "--version", "1", let_through=1)

    held = show(run_cli, "base")
    assert (held["state"], [v["number"] for v in held["versions"]]) == ("updating", [2])
    assert [Path(v["location"]) for v in held["removing"]] == version1
    assert [p.exists() for p in version1] == [False, True]  # killed after the first
    assert_no_orphan(run_cli, pool_dir)
    assert_one_busy(run_cli)

    assert "the 2 volume(s) it was removing removed" in repaired(run_cli, "base")
    base = show(run_cli, "base")
    assert (base["state"], base["version"], base["removing"]) == ("ready", 2, [])
    assert [v["number"] for v in run_cli("master", "versions", "base", "--json").json()] == [2]
    assert not any(p.exists() for p in version1)
    assert_no_orphan(run_cli, pool_dir)
    assert run_cli("clone", "base", "web3").code == 0  # the master works as before


def assert_one_busy(run_cli) -> None:
    """While held, the master refuses another retire, pointing at repair."""
    refused = run_cli("master", "retire", "base", "--version", "1")
    assert refused.code != 0 and "busy (updating)" in refused.err and "encompass repair" in refused.err


# A platform of physical machines that boot disk files, its machines' state in a JSON file per
# machine (what the machine really runs, as the platform reports it to discovery).
FILE_BLADES = """
    import json
    from pathlib import Path
    from encompass_core import hookimpl
    from encompass_core.contracts import PlatformCapabilities, PlatformDriver
    from encompass_core.errors import DriverError
    from encompass_core.model import Machine
    from encompass_core.records import PlatformDriverRecord
    from encompass_core.settings import Setting

    class FileBlades(PlatformDriver):
        '''PCs that boot the disk files attached to them (as a PXE-booted NFS client would).'''
        capabilities = PlatformCapabilities(kind="physical", attach_kinds=("file", "dir"),
                                            boot_modes=("disk",))

        def __init__(self, section, config):
            self.platform = section.name
            self.folder = Path(section.settings["folder"])

        def _machine(self, name, power, disks=()):
            (self.folder / f"{name}.json").write_text(json.dumps({"power": power, "disks": list(disks)}))
            return Machine(name=name, platform=self.platform, kind="physical", power=power,
                           disks=tuple(disks))

        def discover(self):
            found = []
            for path in sorted(self.folder.glob("*.json")):
                state = json.loads(path.read_text())
                found.append(Machine(name=path.stem, platform=self.platform, kind="physical",
                                     power=state["power"], disks=tuple(state["disks"])))
            return found

        def deploy(self, machine, image, attachments):
            if (self.folder / "unplugged").exists():
                raise DriverError(f"machine '{machine.name}' does not answer (unplugged)")
            return self._machine(machine.name, "on", [a.address for a in attachments])

        def undeploy(self, machine, image):
            return self._machine(machine.name, "off")

    @hookimpl
    def encompass_platform_drivers():
        yield PlatformDriverRecord(name="fileblades", factory=FileBlades,
                                   settings=(Setting("folder", str, required=True),))
"""


@pytest.fixture
def office(tmp_path: Path, encompass_home: Path) -> tuple[dict[str, str], Path]:
    """Platform 'office' of file-booting PCs (pc1, off): the environment that loads it, and
    the folder holding what each machine runs."""
    site, folder = tmp_path / "site", tmp_path / "office"
    site.mkdir()
    folder.mkdir()
    fake_distribution(site, "file-blades", {"fileblades": "fileblades"}, {"fileblades": FILE_BLADES})
    (folder / "pc1.json").write_text(json.dumps({"power": "off", "disks": []}))
    with (encompass_home / "encompass.toml").open("a") as config:
        config.write(f'\n[platforms.office]\ndriver = "fileblades"\nfolder = "{folder}"\n')
    return on_path(site), folder


def test_a_deployed_clone_killed_mid_rebase_is_deployed_again_by_repair(run_cli, clones, encompass_home,
                                                                        office):
    env, folder = office
    assert run_cli("discover", "--platform", "office", "--apply", env=env).code == 0
    deployed = run_cli("deploy", "web1", "pc1", env=env)
    assert deployed.code == 0, deployed.err
    before = show(run_cli, "web1")

    kill_stalled(encompass_home, "encompass_core.operations.rebase._apply", "rebase", "web1",
                 "--set", f"rootpw={SECRET_NEW}", env=env)

    # The rebase had undeployed it: the machine is off, and the clone is held.
    assert json.loads((folder / "pc1.json").read_text())["power"] == "off"
    assert show(run_cli, "web1")["state"] == "rebasing"
    dry = run_cli("repair", "--dry-run", "--json", env=env).json()["images"]
    assert "deployed again on machine 'pc1'" in dry[0]["action"]

    done = run_cli("repair", "--json", env=env)

    assert done.code == 0, done.err
    [web1_action] = [s["action"] for s in done.json()["images"] if s["name"] == "web1"]
    assert web1_action.endswith("(done)"), web1_action
    web1 = show(run_cli, "web1")
    assert (web1["state"], web1["machine"], web1["master_version"]) == ("deployed", "pc1", 1)
    assert web1["volumes"] == before["volumes"] and web1["redeploy_on"] is None
    running = json.loads((folder / "pc1.json").read_text())  # what the machine really runs
    assert running["power"] == "on"
    assert {v["location"] for v in web1["volumes"]} <= set(running["disks"])
    assert run_cli("machine", "show", "pc1", "--json", env=env).json()["image"] == "web1"
    again = run_cli("repair", "--json", env=env).json()  # records and platform agree now
    assert (again["images"], again["claims"]) == ([], [])

    # Killed again, and the machine does not answer when repair deploys it again: repair says
    # so and what to run; the clone is ready, as the machine (off) has it.
    kill_stalled(encompass_home, "encompass_core.operations.rebase._apply", "rebase", "web1",
                 "--set", f"rootpw={SECRET_NEW}", env=env)
    (folder / "unplugged").touch()
    done = run_cli("repair", "--json", env=env)
    assert done.code == 0, done.err
    [web1_action] = [s["action"] for s in done.json()["images"] if s["name"] == "web1"]
    assert "deploying it again on 'pc1' failed" in web1_action
    assert "unplugged" in web1_action and "encompass deploy web1 pc1" in web1_action
    web1 = show(run_cli, "web1")
    assert (web1["state"], web1["machine"]) == ("ready", None)
    assert json.loads((folder / "pc1.json").read_text())["power"] == "off"
    (folder / "unplugged").unlink()
    assert run_cli("deploy", "web1", "pc1", env=env).code == 0
    assert run_cli("undeploy", "web1", env=env).code == 0


def deployed_on_pc1(run_cli, folder: Path, env: dict[str, str]) -> dict:
    """web1 as recorded, checked deployed on pc1 as the machine really runs it."""
    web1 = show(run_cli, "web1")
    assert (web1["state"], web1["machine"]) == ("deployed", "pc1")
    assert (web1["redeploy_on"], web1["redeploy_by"]) == (None, None)
    running = json.loads((folder / "pc1.json").read_text())
    assert running["power"] == "on" and {v["location"] for v in web1["volumes"]} <= set(running["disks"])
    return web1


@pytest.mark.parametrize(("stage", "function", "version"), [
    ("undeployed, not yet held", "encompass_core.operations.batch.run_many", 1),
    ("rebased, not yet deployed again", "encompass_core.operations.rebase._redeploy", 2),
])
def test_a_rebase_killed_between_its_steps_leaves_repair_to_deploy_the_clone_again(
        run_cli, clones, encompass_home, office, stage, function, version):
    env, folder = office
    assert run_cli("discover", "--platform", "office", "--apply", env=env).code == 0
    assert run_cli("deploy", "web1", "pc1", env=env).code == 0
    args = ("rebase", "web1", "--set", f"rootpw={SECRET_NEW}")

    with stalled(encompass_home, function, *args, env=env) as rebasing:
        # Between two of its steps the clone is held by nothing, yet the rebase is alive.
        web1 = show(run_cli, "web1")
        assert (web1["state"], web1["owner"], web1["redeploy_on"]) == ("ready", None, "pc1")
        assert web1["redeploy_by"]["pid"] == rebasing.pid
        assert f"once the rebase ends (process {rebasing.pid}" in run_cli("image", "show", "web1").out
        [row] = run_cli("repair", "--json", env=env).json()["images"]
        assert (row["name"], row["owner"], row["action"]) == ("web1", "alive", "left alone (owner running)")
        assert json.loads((folder / "pc1.json").read_text())["power"] == "off"

    dry = run_cli("repair", "--dry-run", "--json", env=env).json()["images"]
    assert [(r["name"], r["operation"], r["owner"], r["action"]) for r in dry] == [
        ("web1", "rebase", "gone", "-> deployed again on machine 'pc1'")]
    done = run_cli("repair", "--json", env=env)

    assert done.code == 0, done.err
    assert [(r["name"], r["action"]) for r in done.json()["images"]] == [
        ("web1", "-> deployed again on machine 'pc1' (done)")]
    web1 = deployed_on_pc1(run_cli, folder, env)
    assert web1["master_version"] == version, stage
    assert "died before deploying it again" in run_cli("image", "history", "web1").out
    again = run_cli("repair", "--json", env=env).json()
    assert (again["images"], again["claims"]) == ([], [])


def test_a_rebase_and_a_rollback_of_a_deployed_clone_leave_no_intent_behind(run_cli, clones, office):
    env, folder = office
    assert run_cli("discover", "--platform", "office", "--apply", env=env).code == 0
    assert run_cli("deploy", "web1", "pc1", env=env).code == 0
    assert run_cli("rebase", "web1", "--set", f"rootpw={SECRET_NEW}", env=env).code == 0
    assert deployed_on_pc1(run_cli, folder, env)["master_version"] == 2
    assert run_cli("rebase", "web1", "--rollback", env=env).code == 0
    assert deployed_on_pc1(run_cli, folder, env)["master_version"] == 1
    assert run_cli("repair", "--json", env=env).json()["images"] == []
