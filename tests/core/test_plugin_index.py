"""The plugin index: a command starts from what the last full look at the installed plugins
found, while the installation is the same; a distribution installed, removed or changed since
is seen by the very next command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_plugins import BROKEN, FAKE_DRIVER, fake_distribution, on_path

from conftest import ENCOMPASS, cli_env


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A folder put first on the import path, where distributions are installed by hand."""
    path = tmp_path / "site"
    path.mkdir()
    return path


def imported_by_cli(home: Path, env: dict[str, str], *args: str) -> tuple[str, set[str]]:
    """What the real console script prints for ``ARGS`` and the modules it imported (from
    ``-X importtime``, so that its import path is the script's own)."""
    done = subprocess.run([sys.executable, "-X", "importtime", str(ENCOMPASS), *args],
                          env=cli_env(home, env), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    modules = {line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines()
               if line.startswith("import time:")}
    return done.stdout, modules


def index_files(home: Path) -> list[Path]:
    return sorted((home.parent / "xdg-cache" / "encompass").glob("plugins-*.json"))


def test_the_next_command_starts_from_the_index_and_sees_the_same(run_cli, site, encompass_home):
    fake_distribution(site, "fakepool", {"fake": "fakepool"}, {"fakepool": FAKE_DRIVER.format(driver="fake")})
    fake_distribution(site, "brokenplug", {"broken": "brokenplug"}, {"brokenplug": BROKEN})
    env = on_path(site)

    first, looked = imported_by_cli(encompass_home, env, "plugins", "--json")
    assert "importlib.metadata" in looked  # the full look, which writes the index
    written = index_files(encompass_home)
    second, started = imported_by_cli(encompass_home, env, "plugins", "--json")
    assert "importlib.metadata" not in started
    assert index_files(encompass_home) == written

    assert json.loads(second) == json.loads(first)
    rows = {row["name"]: row for row in json.loads(second)}
    assert rows["fake"]["status"] == "active" and rows["fake"]["distribution"] == "fakepool"
    assert rows["broken"]["status"] == "failed" and "libfoo" in rows["broken"]["error"]
    # A plugin that fails to load still says so, one line, when loaded from the index.
    again = run_cli("plugins", env=env)
    assert again.err.strip().splitlines() == [
        "encompass: plugin 'broken' (brokenplug) failed to load: "
        "ImportError: brokenplug needs the libfoo bindings (pip install foo) (-v shows the traceback)"
    ]


def test_a_distribution_installed_or_changed_since_is_seen_at_once(run_cli, site):
    env = on_path(site)
    assert "fake" not in {row["name"] for row in run_cli("plugins", "--json", env=env).json()}

    fake_distribution(site, "fakepool", {"fake": "fakepool"}, {"fakepool": FAKE_DRIVER.format(driver="fake")})
    rows = {row["name"]: row for row in run_cli("plugins", "--json", env=env).json()}
    assert rows["fake"]["status"] == "active"

    # Its entry point now names another module (an upgrade, an editable reinstall).
    (site / "fakepool_two.py").write_text(BROKEN)
    (site / "fakepool-0.1.dist-info" / "entry_points.txt").write_text(
        "[encompass.plugins]\nfake = fakepool_two\n")
    rows = {row["name"]: row for row in run_cli("plugins", "--json", env=env).json()}
    assert rows["fake"]["status"] == "failed" and "libfoo" in rows["fake"]["error"]

    # And removed.
    for leftover in site.iterdir():
        if leftover.is_dir():
            for item in leftover.iterdir():
                item.unlink()
            leftover.rmdir()
    assert "fake" not in {row["name"] for row in run_cli("plugins", "--json", env=env).json()}


def test_a_damaged_index_is_looked_past_and_written_anew(run_cli, encompass_home):
    expected = run_cli("plugins", "--json").json()
    (index,) = index_files(encompass_home)
    index.write_text('{"layout": 1, "key": ')
    result = run_cli("plugins", "--json")
    assert result.code == 0 and result.err == ""
    assert result.json() == expected
    assert json.loads(index.read_text())["plugins"]


def test_an_index_that_cannot_be_written_costs_only_time(run_cli, encompass_home, tmp_path):
    expected = run_cli("plugins", "--json").json()
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    for _ in range(2):
        result = run_cli("plugins", "--json", env={"XDG_CACHE_HOME": str(blocked)})
        assert result.code == 0 and result.err == ""
        assert result.json() == expected
