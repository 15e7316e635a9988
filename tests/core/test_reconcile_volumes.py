"""`encompass discover` reconciles the local pool's files with the images' records: a file copied
in is new and adopted as a master, a moved clone is followed, a deleted one marked missing, a
clone whose backing was changed behind Encompass' back is a conflict; --apply twice changes
nothing the second time."""

from __future__ import annotations

import shutil
import subprocess

from conftest import volume_path


def findings(result) -> dict[str, dict]:
    """The report of ``discover --json``, by the name of what each finding is about."""
    assert result.code == 0, result.err
    return {f["name"]: f for f in result.json()}


def images_json(run_cli) -> dict[str, dict]:
    return {row["name"]: run_cli("image", "show", row["name"], "--json").json()
            for row in run_cli("image", "list", "--json").json()}


def test_a_volume_copied_into_the_pool_is_new_and_adopted_as_a_master(run_cli, master, pool_dir):
    copied = pool_dir / "gold" / "vol0.raw"
    copied.parent.mkdir()
    shutil.copy(volume_path(run_cli, master), copied)

    report = findings(run_cli("discover", "--json"))

    assert report[f"{master}/volume 0"]["status"] == "matched"
    assert report[f"{master}/volume 0"]["why"] == "matched by location"
    new = report[str(copied)]
    assert new["status"] == "new" and new["action"] == "adopted as master 'gold'"
    assert run_cli("image", "show", "gold").code == 3  # the report changed nothing

    applied = findings(run_cli("discover", "--apply", "--json"))

    assert applied[str(copied)]["action"] == "adopted as master 'gold' (done)"
    gold = run_cli("image", "show", "gold", "--json").json()
    assert (gold["kind"], gold["state"]) == ("master", "ready")
    assert gold["volumes"][0]["location"] == str(copied)
    assert "adopted as a master" in run_cli("image", "history", "gold").out
    # A master like any other: it clones.
    assert run_cli("clone", "gold", "web09").code == 0


def test_moved_missing_and_backing_conflicts_then_apply_is_idempotent(run_cli, master, pool_dir,
                                                                      tmp_path):
    for clone in ("web01", "web03"):
        assert run_cli("clone", master, clone).code == 0
    # A full clone: a missing copy-on-write clone and a missing full one are told apart.
    assert run_cli("clone", master, "web02", "--mode", "full").code == 0
    moved_from = volume_path(run_cli, "web01")
    (pool_dir / "web01").rename(pool_dir / "web01-old")  # the admin moved it by hand
    volume_path(run_cli, "web02").unlink()  # and deleted another
    other = tmp_path / "other.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(other), "32M"], check=True)
    web03 = volume_path(run_cli, "web03")
    subprocess.run(["qemu-img", "rebase", "-u", "-F", "qcow2", "-b", str(other), str(web03)], check=True)

    report = findings(run_cli("discover", "--json"))

    moved = report["web01/volume 0"]
    assert moved["status"] == "moved", moved
    assert "probably" in moved["why"] and str(pool_dir / "web01-old" / "vol0.qcow2") in moved["why"]
    missing = report["web02/volume 0"]
    assert missing["status"] == "missing" and "marked missing" in missing["action"]
    conflict = report["web03/volume 0"]
    assert conflict["status"] == "conflict"
    assert f"reads through {other}" in conflict["why"] and "the lineage says" in conflict["why"]
    assert "qemu-img info --backing-chain" in conflict["action"]
    assert volume_path(run_cli, "web01") == moved_from  # nothing changed yet

    applied = findings(run_cli("discover", "--apply", "--json"))

    assert applied["web01/volume 0"]["action"] == "location updated (done)"
    assert volume_path(run_cli, "web01") == pool_dir / "web01-old" / "vol0.qcow2"
    web02 = run_cli("image", "show", "web02", "--json").json()
    assert web02["volumes"][0]["missing"]  # marked, kept
    assert "marked missing" in run_cli("image", "history", "web02").out
    assert applied["web03/volume 0"]["status"] == "conflict"  # left to the administrator
    before = images_json(run_cli)

    again = findings(run_cli("discover", "--apply", "--json"))

    assert images_json(run_cli) == before
    assert again["web01/volume 0"]["status"] == "matched"
    assert again["web02/volume 0"]["status"] == "missing"
    assert "already" in again["web02/volume 0"]["action"]
    # The moved clone still works where it is now.
    assert run_cli("image", "delete", "web01").code == 0
    assert not (pool_dir / "web01-old" / "vol0.qcow2").exists()


def test_a_missing_volume_found_again_is_matched_and_its_mark_cleared(run_cli, master, pool_dir,
                                                                     tmp_path):
    assert run_cli("clone", master, "web04").code == 0
    disk = volume_path(run_cli, "web04")
    kept = tmp_path / "kept.qcow2"
    disk.rename(kept)
    assert run_cli("discover", "--apply").code == 0
    assert run_cli("image", "show", "web04", "--json").json()["volumes"][0]["missing"]

    kept.rename(disk)
    report = findings(run_cli("discover", "--apply", "--json"))

    assert report["web04/volume 0"]["status"] == "matched"
    assert "missing mark cleared" in report["web04/volume 0"]["action"]
    assert run_cli("image", "show", "web04", "--json").json()["volumes"][0]["missing"] is None


def test_an_unknown_pool_is_one_line(run_cli, master):
    result = run_cli("discover", "--pool", "nowhere")
    assert result.code == 3 and result.err.count("\n") == 1
    assert "no pool named 'nowhere'" in result.err


def test_volumes_kept_by_versions_and_rebases_are_matched_not_conflicts(run_cli, master):
    """A master's earlier version and the volumes a rebase keeps for --rollback are recorded:
    discovery matches them and says why, never calls them conflicts to remove by hand."""
    assert run_cli("clone", master, "web01").code == 0
    assert run_cli("clone", master, "web02").code == 0
    assert run_cli("master", "update", master, "--from", "web02").code == 0
    assert run_cli("rebase", "web01").code == 0  # web01 keeps its version-1 volume

    report = findings(run_cli("discover", "--json"))

    assert [f for f in report.values() if f["status"] != "matched"] == []
    old = report[f"{master} (version 1)/volume 0"]
    assert old["why"] == "matched by location; version 1"
    kept = report["web01 (kept for rebase --rollback)/volume 0"]
    assert kept["action"] == "nothing to change"
    assert report["web02/volume 0"]["status"] == "matched"  # still on version 1: no conflict

    assert run_cli("rebase", "web01", "--discard-old").code == 0
    report = findings(run_cli("discover", "--apply", "--json"))
    assert "web01 (kept for rebase --rollback)/volume 0" not in report
    assert {f["status"] for f in report.values()} == {"matched"}
