"""A master's items through the command line: add, list, move, remove, load, and bad input."""

from __future__ import annotations

import pytest

from conftest import assert_one_line_error


@pytest.fixture
def base(run_cli, tmp_path) -> str:
    tree = tmp_path / "tree"
    (tree / "etc").mkdir(parents=True)
    assert run_cli("master", "import", "base", tree).code == 0
    return "base"


def keys(run_cli) -> list[str]:
    result = run_cli("master", "items", "list", "base", "--json")
    assert result.code == 0, result.err
    return [row["key"] for row in result.json()]


def test_add_list_move_remove(run_cli, base):
    assert run_cli("master", "items", "add", "base", "hostname", "--type", "file", "--path", "/etc/hostname",
                   "--prompt", "Host name", "--default", "localhost", "--param", "mode=0644").code == 0
    assert run_cli("master", "items", "add", "base", "net.eth0-address", "--type", "regexp",
                   "--path", "/etc/network/interfaces", "--param", "pattern=address .*",
                   "--optional").code == 0
    assert run_cli("master", "items", "add", "base", "machine-id", "--type", "delete",
                   "--path", "/etc/machine-id", "--position", "1").code == 0
    assert keys(run_cli) == ["machine-id", "hostname", "net.eth0-address"]
    row = run_cli("master", "items", "list", "base", "--json").json()[1]
    assert row == {"key": "hostname", "type": "file", "volume": 0, "partition": None,
                   "path": "/etc/hostname", "description": "", "prompt": "Host name",
                   "default": "localhost", "secret": False, "optional": False,
                   "params": {"mode": "0644"}, "platform_key": None}
    assert run_cli("master", "items", "move", "base", "machine-id", "3").code == 0
    assert keys(run_cli) == ["hostname", "net.eth0-address", "machine-id"]
    table = run_cli("master", "items", "list", "base")
    assert "hostname" in table.out and "Host name" in table.out
    assert run_cli("master", "items", "remove", "base", "net.eth0-address").code == 0
    assert keys(run_cli) == ["hostname", "machine-id"]
    assert "item 1" in run_cli("image", "show", "base").out


@pytest.mark.parametrize("args, words", [
    (("Host", "--type", "file", "--path", "/etc/hostname"), ("invalid item key", "Host")),
    (("h", "--type", "nosuch", "--path", "/etc/h"),
     ("unknown item type 'nosuch'", "file,", "regexp,", "service")),
    (("h", "--type", "file", "--path", "etc/h"), ("must be absolute",)),
    (("h", "--type", "regexp", "--path", "/etc/h", "--param", "pattern=(("), ("not a valid regular",)),
    (("h", "--type", "regexp", "--path", "/etc/h"), ("needs --param pattern",)),
    (("h", "--type", "file", "--path", "/etc/h", "--param", "mdoe=0600"), ("unknown parameter", "mdoe")),
    (("h", "--type", "file", "--path", "/etc/h", "--param", "mode=999"), ("octal mode",)),
    (("pw", "--type", "file", "--path", "/etc/pw", "--secret", "--platform-key", "hostname"),
     ("secret item cannot be handed to a platform",)),
])
def test_bad_items_are_refused(run_cli, base, args, words):
    assert_one_line_error(run_cli("master", "items", "add", "base", *args), *words)
    assert keys(run_cli) == []


def test_duplicate_keys_and_clones_are_refused(run_cli, base):
    add = ("master", "items", "add", "base", "h", "--type", "file", "--path", "/etc/h")
    assert run_cli(*add).code == 0
    assert_one_line_error(run_cli(*add), "item key(s) twice", "h")
    assert run_cli("clone", "base", "web01").code == 0
    result = run_cli("master", "items", "add", "web01", "x", "--type", "file", "--path", "/etc/x")
    assert_one_line_error(result, "'web01' is a clone", "base")


def test_load_from_toml(run_cli, base, tmp_path):
    spec = tmp_path / "items.toml"
    spec.write_text('''
[[item]]
key = "hostname"
type = "file"
path = "/etc/hostname"
prompt = "Host name"
default = "localhost"
[item.params]
mode = "0644"

[[item]]
key = "seed"
type = "cloud-init"
path = "/var/lib/cloud/seed/nocloud"
secret = true
''')
    assert run_cli("master", "items", "load", "base", spec).code == 0
    assert keys(run_cli) == ["hostname", "seed"]
    assert run_cli("master", "items", "load", "base", spec, "--append").code != 0  # keys twice
    bad = tmp_path / "bad.toml"
    bad.write_text('[[item]]\nkey = "x"\ntype = "file"\n')
    assert_one_line_error(run_cli("master", "items", "load", "base", bad), "'path' is required")
    assert keys(run_cli) == ["hostname", "seed"]


def test_load_needs_a_file_or_a_known_preset(run_cli, base, tmp_path):
    assert_one_line_error(run_cli("master", "items", "load", "base"), "either a FILE", "--preset")
    spec = tmp_path / "items.toml"
    spec.write_text('[[item]]\nkey = "h"\ntype = "file"\npath = "/etc/hostname"\n')
    assert_one_line_error(run_cli("master", "items", "load", "base", spec, "--preset", "windows"),
                          "either a FILE")
    assert_one_line_error(run_cli("master", "items", "load", "base", spec, "--partition", "2"),
                          "--volume and --partition go with --preset")
    missing = run_cli("master", "items", "load", "base", "--preset", "no-such-preset",
                      env={"ENCOMPASS_PLUGINS": "none"})
    assert_one_line_error(missing, "no item preset 'no-such-preset'")
    listed = run_cli("master", "items", "presets", "--json", env={"ENCOMPASS_PLUGINS": "none"})
    assert listed.code == 0 and listed.json() == []
    assert keys(run_cli) == []
