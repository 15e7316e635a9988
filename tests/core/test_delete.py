"""Deleting images: refused while others depend on them; history outlives the image."""

from __future__ import annotations

from conftest import assert_one_line_error, image_records, volume_path


def test_a_master_with_clones_is_not_deleted(run_cli, master) -> None:
    assert run_cli("clone", master, "web01", "web02").code == 0
    master_file = volume_path(run_cli, master)

    refused = run_cli("image", "delete", master)

    assert refused.code == 4
    assert_one_line_error(refused, "cannot delete master 'base'", "2 clone(s)", "web01", "web02")
    assert image_records(run_cli)[master]["state"] == "ready"
    assert master_file.exists()


def test_a_clone_with_a_cow_child_is_deleted_once_the_child_is_flattened(run_cli, master) -> None:
    assert run_cli("clone", master, "web01").code == 0
    assert run_cli("clone", "web01", "web01-test").code == 0

    refused = run_cli("image", "delete", "web01")
    assert refused.code == 4
    assert_one_line_error(refused, "web01-test", "encompass image flatten web01-test")
    assert image_records(run_cli)["web01"]["state"] == "ready"

    assert run_cli("image", "flatten", "web01-test").code == 0
    web01_file = volume_path(run_cli, "web01")
    deleted = run_cli("image", "delete", "web01")

    assert deleted.code == 0, deleted.err
    assert not web01_file.exists() and not web01_file.parent.exists()
    assert sorted(image_records(run_cli)) == [master, "web01-test"]
    # The flattened child still reads fine without its former parent.
    assert run_cli("clone", "web01-test", "web02").code == 0


def test_history_is_kept_after_deletion(run_cli, master) -> None:
    assert run_cli("clone", master, "web01").code == 0
    clone_file = volume_path(run_cli, "web01")
    assert run_cli("image", "delete", "web01").code == 0
    assert not clone_file.exists()

    history = run_cli("image", "history", "web01", "--json")

    assert history.code == 0, history.err
    steps = [(e["operation"], e["from_state"], e["to_state"]) for e in history.json()]
    assert steps == [
        ("clone", "new", "cloning"),
        ("clone", "cloning", "ready"),
        ("delete", "ready", "deleting"),
        ("delete", "deleting", "deleted"),
    ]
    assert run_cli("image", "show", "web01").code == 3
