"""Inputs: missing ones named, asked interactively through stdin, secrets never stored nor shown."""

from __future__ import annotations

import stat
import subprocess

import pytest

from conftest import ENCOMPASS, assert_one_line_error, cli_env

PASSWORD = "s3cr3t-Pa55word-never-shown"


@pytest.fixture
def base(run_cli, tmp_path) -> str:
    """Master 'base' (a directory tree) with a hostname item and a secret item; clone web01."""
    tree = tmp_path / "tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc" / "hostname").write_text("master\n")
    (tree / "etc" / "rootpw").write_text("master-password\n")
    assert run_cli("master", "import", "base", tree).code == 0
    assert run_cli("master", "items", "add", "base", "hostname", "--type", "file", "--path", "/etc/hostname",
                   "--prompt", "Host name", "--default", "localhost").code == 0
    assert run_cli("master", "items", "add", "base", "rootpw", "--type", "file", "--path", "/etc/rootpw",
                   "--prompt", "Root password", "--secret", "--param", "mode=0600").code == 0
    assert run_cli("clone", "base", "web01").code == 0
    return "base"


def test_missing_inputs_are_named(run_cli, base):
    result = run_cli("customize", "web01")
    assert_one_line_error(result, "missing input", "hostname", "rootpw", "--interactive")
    assert run_cli("image", "show", "web01", "--json").json()["state"] == "ready"


def test_unknown_key_is_refused(run_cli, base):
    result = run_cli("customize", "web01", "--set", "hostnme=x")
    assert_one_line_error(result, "hostnme", "items: hostname, rootpw")


def test_interactive_prompts_through_stdin(encompass_home, run_cli, base):
    # The hostname prompt offers the default (Enter accepts it); the secret is asked twice.
    done = subprocess.run([str(ENCOMPASS), "customize", "web01", "--interactive"],
                          input=f"\n{PASSWORD}\n{PASSWORD}\n", env=cli_env(encompass_home),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "Host name [hostname] [localhost]:" in done.stderr
    assert "Root password [rootpw]:" in done.stderr
    assert PASSWORD not in done.stdout + done.stderr
    assert run_cli("image", "cat", "web01", "/etc/hostname").out == "localhost\n"
    assert run_cli("image", "cat", "web01", "/etc/rootpw").out == f"{PASSWORD}\n"


def test_secrets_absent_from_metadata_and_output(encompass_home, run_cli, base, tmp_path):
    outputs = []
    for args in (("customize", "web01", "--set", "hostname=web01", "--set", f"rootpw={PASSWORD}"),
                 ("customize", "web01", "--set", f"rootpw={PASSWORD}", "--json"),
                 ("image", "show", "web01"), ("image", "show", "web01", "--json"),
                 ("image", "history", "web01"), ("image", "list", "--json"),
                 ("master", "items", "list", "base", "--json")):
        result = run_cli(*args)
        assert result.code == 0, result.err
        outputs.append(result.out + result.err)
    assert "(secret)" in outputs[2]
    assert "nothing to change" in outputs[1] or '"unchanged"' in outputs[1]
    for text in outputs:
        assert PASSWORD not in text
    for path in encompass_home.rglob("*"):
        if path.is_file() and "pool" not in path.parts:
            assert PASSWORD.encode() not in path.read_bytes(), path
    key = encompass_home / "secret.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    # The secret reached the image, readable by root only.
    assert run_cli("image", "cat", "web01", "/etc/rootpw").out == f"{PASSWORD}\n"
    listing = run_cli("image", "ls", "web01", "/etc/rootpw", "--json").json()
    assert listing[0]["mode"] == "0600"
    # A changed secret is applied again; un-customizing brings the master's file back.
    assert run_cli("customize", "web01", "--set", "rootpw=another").code == 0
    assert run_cli("image", "cat", "web01", "/etc/rootpw").out == "another\n"
    assert run_cli("uncustomize", "web01").code == 0
    assert run_cli("image", "cat", "web01", "/etc/rootpw").out == "master-password\n"


def test_a_secret_item_has_no_default(run_cli, base):
    result = run_cli("master", "items", "add", "base", "apikey", "--type", "file", "--path", "/etc/key",
                     "--secret", "--default", "x")
    assert_one_line_error(result, "apikey", "secret", "default")


def test_values_file_for_all_and_per_clone(run_cli, base, tmp_path):
    assert run_cli("clone", "base", "web02").code == 0
    values = tmp_path / "values.toml"
    values.write_text(f'hostname = "{{clone}}.example.org"\nrootpw = "{PASSWORD}"\n'
                      '[clone.web02]\nhostname = "special"\n')
    result = run_cli("customize", "web01", "web02", "--values", values)
    assert result.code == 0, result.err
    assert run_cli("image", "cat", "web01", "/etc/hostname").out == "web01.example.org\n"
    assert run_cli("image", "cat", "web02", "/etc/hostname").out == "special\n"


def test_a_clone_left_in_error_is_customized_again(encompass_home, run_cli, base):
    from encompass_core.context import Context
    from encompass_core.operations import holding

    # A customization that died half-way (as `encompass repair` leaves it): state error.
    ctx = Context(home=encompass_home)
    held = holding.start(ctx, "web01", "customize")
    held.dirty = True
    holding.fail(ctx, held, "the utility server lost power")
    assert run_cli("image", "show", "web01", "--json").json()["state"] == "error"

    result = run_cli("customize", "web01", "--set", "hostname=web01", "--set", f"rootpw={PASSWORD}")
    assert result.code == 0, result.err
    assert run_cli("image", "show", "web01", "--json").json()["state"] == "ready"
    assert run_cli("image", "cat", "web01", "/etc/hostname").out == "web01\n"
