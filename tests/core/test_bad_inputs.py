"""Bad inputs: each is one line on stderr saying what is wrong, a non-zero exit, no traceback."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from conftest import (
    ENCOMPASS,
    CliResult,
    assert_one_line_error,
    cli_env,
    image_records,
    make_qcow2_master,
    qemu_io,
)


def test_an_unknown_master(run_cli) -> None:
    result = run_cli("clone", "nosuch", "web01")
    assert result.code == 3
    assert_one_line_error(result, "no image named 'nosuch'", "encompass image list")


def test_a_duplicate_name(run_cli, master, raw_disk) -> None:
    assert run_cli("clone", master, "web01").code == 0

    again = run_cli("clone", master, "web01")
    assert again.code == 4
    assert_one_line_error(again, "web01", "taken already")

    reimported = run_cli("master", "import", master, raw_disk)
    assert reimported.code == 4
    assert_one_line_error(reimported, "'base' exists already")
    assert sorted(image_records(run_cli)) == [master, "web01"]


@pytest.mark.parametrize("name", ["Web_01", "web.01", "web01-", "a" * 64])
def test_an_invalid_name(run_cli, master, name) -> None:
    result = run_cli("clone", master, name)
    assert result.code == 2
    assert_one_line_error(result, f"invalid clone name {name!r}", "e.g. 'web01'")
    assert sorted(image_records(run_cli)) == [master]


def test_a_missing_file_to_import(run_cli, tmp_path) -> None:
    missing = tmp_path / "nowhere.qcow2"
    result = run_cli("master", "import", "base", missing)
    assert result.code == 3
    assert_one_line_error(result, str(missing))
    assert image_records(run_cli) == {}


def test_a_half_written_qcow2_is_refused_before_anything_is_recorded(run_cli, tmp_path, pool_dir) -> None:
    disk = make_qcow2_master(tmp_path / "half.qcow2")
    qemu_io(disk, "write -P 0x11 8M 8M")
    os.truncate(disk, disk.stat().st_size // 2)  # as a copy cut short would leave it

    result = run_cli("master", "import", "base", disk)

    assert result.code == 2
    assert_one_line_error(result, str(disk), "not a usable qcow2 image")
    assert image_records(run_cli) == {}
    assert not (pool_dir / "base").exists()


def test_a_qcow2_overlay_is_refused_as_a_master(run_cli, tmp_path, qcow2_disk) -> None:
    overlay = tmp_path / "overlay.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(qcow2_disk),
                    str(overlay)], check=True)
    result = run_cli("master", "import", "base", overlay)
    assert result.code == 2
    assert_one_line_error(result, "overlay of", "qemu-img convert")


def write_config(home, text: str) -> None:
    (home / "encompass.toml").write_text(text)


def test_a_malformed_config_names_its_file_and_line(run_cli, encompass_home) -> None:
    write_config(encompass_home, '[defaults]\npool = "local"\n\n[pools.local\ndriver = "local"\n')
    result = run_cli("pool", "list")
    assert result.code == 5
    assert_one_line_error(result, str(encompass_home / "encompass.toml"), "line 4")


def test_a_secret_written_in_the_config_is_refused(run_cli, encompass_home, raw_disk) -> None:
    write_config(encompass_home, '[pools.local]\ndriver = "local"\npath = "pool"\npassword = "hunter2"\n')
    result = run_cli("master", "import", "base", raw_disk)
    assert result.code == 5
    assert_one_line_error(result, "[pools.local]", "'password'", "password_env", "password_file")
    assert "hunter2" not in result.err


def test_an_unknown_pool_driver(run_cli, encompass_home, raw_disk) -> None:
    write_config(encompass_home, '[pools.local]\ndriver = "nosuchdriver"\npath = "pool"\n')
    result = run_cli("master", "import", "base", raw_disk)
    assert result.code == 5
    assert_one_line_error(result, "pool 'local'", "driver 'nosuchdriver'", "drivers available: ")
    # Every installed storage plugin's drivers are listed; the built-in one always is.
    assert "local" in result.err.split("drivers available: ")[1].split(".")[0].split(", ")


def test_an_unknown_pool(run_cli, master) -> None:
    result = run_cli("clone", master, "web01", "--pool", "fast")
    assert result.code == 3
    assert_one_line_error(result, "no pool named 'fast'", "[pools.fast]")


def run_init(home) -> CliResult:
    done = subprocess.run([str(ENCOMPASS), "init"], env=cli_env(home), capture_output=True, text=True)
    return CliResult(done.returncode, done.stdout, done.stderr)


def test_init_with_a_home_under_a_file(tmp_path) -> None:
    (tmp_path / "afile").write_text("")
    result = run_init(tmp_path / "afile" / "home")
    assert result.code == 5
    assert_one_line_error(result, str(tmp_path / "afile" / "home"), "Not a directory", "ENCOMPASS_HOME")


def test_init_on_a_read_only_file_system(tmp_path) -> None:
    mount_point = tmp_path / "ro"
    mount_point.mkdir()
    home = mount_point / "home"
    # A read-only tmpfs in a private mount namespace: gone when the command ends.
    script = 'mount -t tmpfs -o ro,size=1m none "$1" || exit 99; exec "$2" init'
    done = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh",
                           str(mount_point), str(ENCOMPASS)],
                          env=cli_env(home), capture_output=True, text=True)
    if done.returncode == 99 or "unshare failed" in done.stderr:
        pytest.skip("cannot mount a read-only file system here (needs root)")
    result = CliResult(done.returncode, done.stdout, done.stderr)
    assert result.code == 5
    assert_one_line_error(result, str(home), "Read-only file system", "ENCOMPASS_HOME")


@pytest.mark.parametrize("line, words", [
    ('parallel = "four"', ("[defaults]: 'parallel'", "'four'", "whole number")),
    ("parallel = 0", ("[defaults]: 'parallel'", "at least 1")),
    ('clone_mode = "copy"', ("[defaults]: 'clone_mode'", "cow, full", "'copy'")),
    ("pool = 3", ("[defaults]: 'pool'", "text in quotes")),
    ('poool = "local"', ("[defaults]", "unknown setting 'poool'", "clone_mode, parallel, pool")),
])
def test_a_bad_value_in_defaults(run_cli, encompass_home, master, line, words) -> None:
    write_config(encompass_home, f'[defaults]\n{line}\n\n[pools.local]\ndriver = "local"\npath = "pool"\n')
    result = run_cli("clone", master, "web01")
    assert result.code == 5
    assert_one_line_error(result, str(encompass_home / "encompass.toml"), *words)


def test_a_config_that_is_not_utf8(run_cli, encompass_home) -> None:
    (encompass_home / "encompass.toml").write_bytes(b'[defaults]\npool = "l\xe9cal"\n')
    result = run_cli("pool", "list")
    assert result.code == 5
    assert_one_line_error(result, str(encompass_home / "encompass.toml"), "not UTF-8")


def test_a_setting_of_the_wrong_type_is_named_plainly(run_cli, encompass_home, raw_disk) -> None:
    write_config(encompass_home, '[pools.local]\ndriver = "local"\npath = "pool"\nmax_chain_depth = true\n')
    result = run_cli("master", "import", "base", raw_disk)
    assert result.code == 5
    assert_one_line_error(result, "'max_chain_depth'", "should be a whole number", "True")


@pytest.mark.tinydb_only
@pytest.mark.parametrize("content, words", [
    (b"\x89PNG\r\n\x1a\n\x00\xff\xfe garbage", ("corrupt", "not UTF-8")),
    (b'{"_meta": {"1": {"schema": 1}}, "images": "x"}', ("corrupt", "table 'images'")),
    (b'{"images": "x"}', ("corrupt", "table 'images'")),
    (b'{"_meta": {"1": {"schema": 1}}, "images": {"1": 5}}', ("corrupt", "table 'images'")),
])
def test_a_damaged_metadata_file(run_cli, encompass_home, content, words) -> None:
    metadata = encompass_home / "metadata.json"
    metadata.write_bytes(content)
    result = run_cli("image", "list")
    assert result.code == 5
    assert_one_line_error(result, str(metadata), *words, "left untouched")
    assert metadata.read_bytes() == content


@pytest.mark.tinydb_only
@pytest.mark.parametrize("change, words", [
    (lambda doc: doc.pop("volumes"), ("image 'base'", "missing field 'volumes'")),
    (lambda doc: doc.update(state="bogus"), ("image 'base'", "state", "'bogus'", "ready")),
    (lambda doc: doc.update(kind="golden"), ("image 'base'", "kind", "'golden'")),
])
def test_a_stored_image_that_does_not_fit_the_model(run_cli, encompass_home, master, change, words) -> None:
    # The image's document, edited where it was last written: one shard of metadata.d, or the
    # shard's log (one patch a line) when a transaction changed it since.
    (holder,) = [f for f in (encompass_home / "metadata.d").glob("images-*.json")
                 if master in json.loads(f.read_text())["images"]]
    log = holder.with_suffix(".jsonl")
    patches = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    if any(master in patch["i"] for patch in patches):
        holder = log
        last = max(n for n, patch in enumerate(patches) if master in patch["i"])
        change(patches[last]["i"][master])
        log.write_text("".join(json.dumps(patch) + "\n" for patch in patches))
    else:
        data = json.loads(holder.read_text())
        change(data["images"][master])
        holder.write_text(json.dumps(data))
    for args in (("image", "list"), ("image", "show", master), ("clone", master, "web01")):
        result = run_cli(*args)
        assert result.code == 5
        assert_one_line_error(result, str(holder), *words)


def dir_master_with_item(run_cli, tmp_path, path: str) -> None:
    tree = tmp_path / "tree"
    (tree / "etc").mkdir(parents=True)
    os.mkfifo(tree / "etc" / "fifo")
    assert run_cli("master", "import", "base", tree).code == 0
    assert run_cli("master", "items", "add", "base", "target", "--type", "file", "--path", path).code == 0
    assert run_cli("clone", "base", "web01").code == 0


def test_customize_exits_with_the_confinement_code(run_cli, tmp_path) -> None:
    dir_master_with_item(run_cli, tmp_path, "/../etc/hostname")
    result = run_cli("customize", "web01", "--set", "target=x")
    assert result.code == 8, result.err
    assert "climbs above the root" in result.err and "Traceback" not in result.err


def test_writing_over_a_special_file_names_it_plainly(run_cli, tmp_path) -> None:
    dir_master_with_item(run_cli, tmp_path, "/etc/fifo")
    result = run_cli("customize", "web01", "--set", "target=x")
    assert result.code == 2, result.err
    assert "it is a special file (device, FIFO or socket), not a regular file" in result.err
    assert " a other" not in result.err


def test_a_wrong_lab_peer_for_the_physical_demo_is_one_line_naming_the_installed_ones(run_cli) -> None:
    """`encompass demo --physical --peer NAME`: refused before anything starts; --help lists
    the same peers."""
    from encompass_core.plugins import PluginHost

    installed = [peer.name for answer in PluginHost().load().hook.encompass_lab_peers()
                 for peer in (answer or ()) if peer.kind == "platform"]  # san/nas serve --pool
    result = run_cli("demo", "--physical", "--peer", "nosuch")
    if not installed:
        assert_one_line_error(result, "needs a plugin with a lab peer")
        return
    assert result.code == 2
    assert_one_line_error(result, "no lab peer named 'nosuch'", f"installed: {', '.join(installed)}")
    help_text = " ".join(run_cli("demo", "--help").out.split())
    assert f"Installed: {', '.join(installed)}." in help_text
