"""Master versions: a master updated from a patched clone and from new files, clones on each
version, outdated ones listed, versions retired only when no clone needs them."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import assert_one_line_error, image_records


def guest_tree(root: Path, release: str) -> Path:
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "hostname").write_text("master\n")
    (root / "etc" / "release").write_text(f"{release}\n")
    return root


def cat(run_cli, name: str, path: str, volume: int = 0) -> str:
    result = run_cli("image", "cat", name, path, "--volume", volume)
    assert result.code == 0, result.err
    return result.out


@pytest.fixture
def base(run_cli, tmp_path: Path) -> str:
    """Master 'base' (version 1): a root tree and a data tree (volume 1), a hostname item."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "rows").write_text("none\n")
    done = run_cli("master", "import", "base", guest_tree(tmp_path / "v1", "v1"), data, "--data-volume", 1)
    assert done.code == 0, done.err
    assert run_cli("master", "items", "add", "base", "hostname", "--type", "file",
                   "--path", "/etc/hostname").code == 0
    return "base"


def test_a_master_updated_twice_keeps_clones_on_each_version(run_cli, base, pool_dir, tmp_path):
    assert run_cli("clone", base, "a1", "a2").code == 0
    first = run_cli("image", "tree").out
    assert "master v1, ready" in first and "versions kept" not in first
    assert run_cli("customize", "a1", "a2", "--set", "hostname={clone}").code == 0
    # a1 is patched (as a deployed clone would be, then undeployed)
    (pool_dir / "a1" / "vol0" / "etc" / "release").write_text("v2\n")
    (pool_dir / "a1" / "vol0" / "etc" / "patch").write_text("applied\n")

    updated = run_cli("master", "update", base, "--from", "a1")
    assert updated.code == 0, updated.err
    assert "version 2" in updated.err
    # The new version has the patch, not a1's own customization; a1 itself is untouched.
    assert cat(run_cli, base, "/etc/release") == "v2\n"
    assert cat(run_cli, base, "/etc/patch") == "applied\n"
    assert cat(run_cli, base, "/etc/hostname") == "master\n"
    assert cat(run_cli, "a1", "/etc/hostname") == "a1\n"
    assert cat(run_cli, base, "/rows", volume=1) == "none\n"  # data: the master's, not a1's
    shown = run_cli("image", "show", base, "--json").json()
    assert shown["version"] == 2 and all(v["readonly"] for v in shown["volumes"])
    assert cat(run_cli, "a2", "/etc/release") == "v1\n"  # clones of v1 still read v1

    assert run_cli("clone", base, "b1").code == 0
    assert cat(run_cli, "b1", "/etc/patch") == "applied\n"
    imported = run_cli("master", "update", base, "--import", guest_tree(tmp_path / "v3", "v3"))
    assert imported.code == 0, imported.err
    assert run_cli("clone", base, "c1").code == 0

    rows = image_records(run_cli)
    assert {n: (r["version"], r["latest"], r["outdated"]) for n, r in rows.items()} == {
        "base": (3, 3, False), "a1": (1, 3, True), "a2": (1, 3, True), "b1": (2, 3, True),
        "c1": (3, 3, False)}
    outdated = run_cli("image", "list", "--outdated", "--json")
    assert outdated.code == 0, outdated.err
    assert [r["name"] for r in outdated.json()] == ["a1", "a2", "b1"]
    assert "1 of 3 (outdated)" in run_cli("image", "list", "--outdated").out

    versions = run_cli("master", "versions", base, "--json").json()
    assert [(v["number"], v["current"], v["clones"]) for v in versions] == [
        (1, False, ["a1", "a2"]), (2, False, ["b1"]), (3, True, ["c1"])]
    assert versions[1]["note"] == "from clone 'a1'" and versions[2]["note"].startswith("imported from")
    assert "version 1 of 3 (outdated" in run_cli("image", "show", "a2").out
    [tree] = run_cli("image", "tree", "--json").json()
    assert {c["name"]: c["version"] for c in tree["children"]} == {"a1": 1, "a2": 1, "b1": 2, "c1": 3}
    drawn = run_cli("image", "tree").out
    assert "clone of v1 (outdated: v3 is out)" in drawn
    assert "master v3, versions kept: 1, 2, 3" in drawn
    history = [e["message"] for e in run_cli("image", "history", base, "--json").json()]
    assert "version 2 made from clone 'a1' (2 volume(s))" in history


def test_a_version_is_retired_only_once_no_clone_needs_it(run_cli, base, pool_dir, tmp_path):
    assert run_cli("clone", base, "a1").code == 0
    first = Path(run_cli("image", "show", base, "--json").json()["volumes"][0]["location"])
    assert run_cli("master", "update", base, "--import", guest_tree(tmp_path / "v2", "v2")).code == 0

    refused = run_cli("master", "retire", base, "--version", 1)
    assert_one_line_error(refused, "derive from it", "a1", "encompass rebase")
    assert refused.code == 4
    assert_one_line_error(run_cli("master", "retire", base, "--version", 2), "current one")
    assert run_cli("master", "retire", base, "--version", 7).code == 3

    assert run_cli("rebase", "a1").code == 0
    assert_one_line_error(run_cli("master", "retire", base, "--version", 1), "rollback", "a1")
    assert run_cli("rebase", "a1", "--discard-old").code == 0
    retired = run_cli("master", "retire", base, "--version", 1)
    assert retired.code == 0, retired.err
    assert not first.exists()
    assert [v["number"] for v in run_cli("master", "versions", base, "--json").json()] == [2]
    assert cat(run_cli, "a1", "/etc/release") == "v2\n"
    assert run_cli("image", "delete", "a1").code == 0
    assert run_cli("image", "delete", base).code == 0
    assert not any(pool_dir.iterdir())  # every version's volumes went with the master


@pytest.mark.tinydb_only  # refused before the store is written: the same on both backends
def test_bad_updates_say_why_in_one_line(run_cli, base, tmp_path):
    assert run_cli("clone", base, "a1").code == 0
    assert run_cli("master", "import", "other", guest_tree(tmp_path / "o", "o")).code == 0
    tree = guest_tree(tmp_path / "v2", "v2")
    assert_one_line_error(run_cli("master", "update", base), "--from CLONE or --import")
    assert_one_line_error(run_cli("master", "update", base, "--from", "a1", "--import", tree), "not both")
    assert_one_line_error(run_cli("master", "update", base, "--import"), "needs the new volumes")
    assert_one_line_error(run_cli("master", "update", "other", "--from", "a1"), "not a clone of master")
    assert_one_line_error(run_cli("master", "update", "a1", "--from", "a1"), "is a clone, not a master")
    assert_one_line_error(run_cli("master", "update", base, "--import", tree, tree),
                          "1 volume(s) besides its data volumes", "got 2")
    assert_one_line_error(run_cli("master", "update", base, "--import", tmp_path / "nope"), "no such file")
    assert_one_line_error(run_cli("master", "import", "x", tree, "--data-volume", 3), "--data-volume 3")
    assert_one_line_error(run_cli("rebase", base), "is a master")
    assert_one_line_error(run_cli("rebase", "a1", "--version", 5), "no version 5", "kept: 1")
    assert run_cli("rebase", "a1").err.strip() == "a1: on version 1 already"
    assert image_records(run_cli)["base"]["version"] == 1
