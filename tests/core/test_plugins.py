"""Plugins: a broken one never takes the CLI down; good ones show what they register."""

from __future__ import annotations

import os
import subprocess
import textwrap
import types
from pathlib import Path

import pytest

from conftest import assert_one_line_error
from encompass_core import hookimpl
from encompass_core.errors import PluginError
from encompass_core.plugins import PluginHost
from encompass_core.records import StorageDriverRecord


def fake_distribution(site: Path, dist: str, plugins: dict[str, str], modules: dict[str, str]) -> None:
    """Install distribution ``dist`` 0.1 into ``site`` (a directory later put on PYTHONPATH).

    ``plugins`` maps entry point names of ``encompass.plugins`` to module names; ``modules``
    maps module names to their source.
    """
    info = site / f"{dist.replace('-', '_')}-0.1.dist-info"  # as installers escape it
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    points = "".join(f"{name} = {module}\n" for name, module in plugins.items())
    (info / "entry_points.txt").write_text(f"[encompass.plugins]\n{points}")
    for module, source in modules.items():
        (site / f"{module}.py").write_text(textwrap.dedent(source))


def on_path(site: Path) -> dict[str, str]:
    """PYTHONPATH for a CLI subprocess: ``site`` first, then what the tests run with (a
    worktree's code over the installed one)."""
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}


BROKEN = "raise ImportError('brokenplug needs the libfoo bindings (pip install foo)')\n"

FAKE_DRIVER = """
    from encompass_core import hookimpl
    from encompass_core.records import StorageDriverRecord

    @hookimpl
    def encompass_storage_drivers():
        yield StorageDriverRecord(name="{driver}", factory=object, description="a fake pool")
"""


@pytest.fixture
def site(tmp_path: Path) -> Path:
    path = tmp_path / "site"
    path.mkdir()
    return path


@pytest.fixture
def broken_site(site: Path) -> Path:
    fake_distribution(site, "brokenplug", {"broken": "brokenplug"}, {"brokenplug": BROKEN})
    return site


def plugin_rows(result) -> dict[str, dict]:
    assert result.code == 0, result.err
    return {row["name"]: row for row in result.json()}


def test_a_broken_plugin_is_listed_as_failed_and_the_cli_still_works(run_cli, broken_site) -> None:
    env = {**on_path(broken_site)}

    listed = run_cli("plugins", env=env)
    assert listed.code == 0
    broken_line = next(line for line in listed.out.splitlines() if line.startswith("broken "))
    assert "failed" in broken_line and "brokenplug" in broken_line and "libfoo" in broken_line
    assert "Traceback" not in listed.out + listed.err
    assert listed.err.strip().splitlines() == [
        "encompass: plugin 'broken' (brokenplug) failed to load: "
        "ImportError: brokenplug needs the libfoo bindings (pip install foo) (-v shows the traceback)"
    ]

    rows = plugin_rows(run_cli("plugins", "--json", env=env))
    assert rows["broken"]["status"] == "failed"
    assert "libfoo" in rows["broken"]["error"]
    assert rows["local"]["status"] == "active"

    images = run_cli("image", "list", env=env)
    assert images.code == 0
    assert "no images yet" in images.err


def test_the_traceback_of_a_broken_plugin_only_with_verbose(run_cli, broken_site) -> None:
    verbose = run_cli("-v", "plugins", env={**on_path(broken_site)})
    assert verbose.code == 0
    assert "Traceback" in verbose.out + verbose.err
    assert "brokenplug.py" in verbose.out + verbose.err


def test_a_broken_plugin_asked_for_by_name_is_fatal(run_cli, broken_site, encompass_home) -> None:
    with (encompass_home / "encompass.toml").open("a") as config:
        config.write('\n[pools.broken]\ndriver = "broken"\n')
    result = run_cli("clone", "anything", "web01", "--pool", "broken",
                     env={**on_path(broken_site)})
    assert result.code == 5
    assert "plugin 'broken' failed to load" in result.err and "libfoo" in result.err
    assert "Traceback" not in result.err


def test_the_allow_list_shows_excluded_plugins_as_disabled(run_cli, site) -> None:
    fake_distribution(site, "fakepool", {"fake": "fakepool"},
                      {"fakepool": FAKE_DRIVER.format(driver="fake")})
    fake_distribution(site, "brokenplug", {"broken": "brokenplug"}, {"brokenplug": BROKEN})

    result = run_cli("plugins", "--json", env={**on_path(site), "ENCOMPASS_PLUGINS": "fake"})

    rows = plugin_rows(result)
    assert rows["fake"]["status"] == "active"
    assert rows["broken"]["status"] == "disabled"
    assert "ENCOMPASS_PLUGINS" in rows["broken"]["error"]
    assert result.err == ""  # a disabled plugin is never imported, so it cannot fail


def test_a_pool_whose_plugin_is_left_out_by_the_allow_list_says_so(run_cli, site, encompass_home) -> None:
    fake_distribution(site, "fakepool", {"fake": "fakepool"},
                      {"fakepool": FAKE_DRIVER.format(driver="fake")})
    with (encompass_home / "encompass.toml").open("a") as config:
        config.write('\n[pools.elsewhere]\ndriver = "fake"\n')

    result = run_cli("clone", "anything", "web01", "--pool", "elsewhere",
                     env={**on_path(site), "ENCOMPASS_PLUGINS": "none-of-them"})

    assert result.code == 5
    assert result.err.strip().splitlines() == [
        f"encompass: pool 'elsewhere' in {encompass_home / 'encompass.toml'} uses driver 'fake', whose "
        "plugin is installed but left out by ENCOMPASS_PLUGINS; add 'fake' to it, or unset it"
    ]


def test_a_good_plugin_is_active_with_its_distribution_and_hooks(run_cli, site) -> None:
    fake_distribution(site, "fakepool", {"fake": "fakepool"},
                      {"fakepool": FAKE_DRIVER.format(driver="fake")})

    rows = plugin_rows(run_cli("plugins", "--json", env={**on_path(site)}))

    assert rows["fake"] == {
        "name": "fake", "status": "active", "origin": "elsewhere", "distribution": "fakepool",
        "version": "0.1", "contract_edition": None, "builtin": False,
        "hooks": ["encompass_storage_drivers"], "error": None,
    }


def test_two_plugins_registering_the_same_driver_are_an_error_naming_both(run_cli, site, raw_disk) -> None:
    fake_distribution(site, "fakepool-one", {"one": "fakeone"}, {"fakeone": FAKE_DRIVER.format(driver="dup")})
    fake_distribution(site, "fakepool-two", {"two": "faketwo"}, {"faketwo": FAKE_DRIVER.format(driver="dup")})

    result = run_cli("master", "import", "base", raw_disk, env={**on_path(site)})

    assert result.code == 6
    assert_one_line_error(result, "'dup' is registered twice", "fakepool-one", "fakepool-two")


class InlinePool:
    """A plugin written inline, as a test or a notebook would."""

    @hookimpl
    def encompass_storage_drivers(self):
        yield StorageDriverRecord(name="Inline_Pool", factory=dict)


def test_an_inline_plugin_registers_and_unregisters() -> None:
    host = PluginHost().load(allow="none-of-them")
    assert "inline-pool" not in host.storage_drivers()

    host.register(InlinePool(), name="inline")
    try:
        record = host.storage_drivers()["inline-pool"]  # the name is normalized
        assert record.factory is dict
        assert host.infos["inline"].status == "active"
        assert host.infos["inline"].hooks == ("encompass_storage_drivers",)
    finally:
        host.unregister("inline")

    assert "inline-pool" not in host.storage_drivers()
    assert "local" in host.storage_drivers()
    assert "inline" not in host.infos


def test_an_inline_plugin_clashing_with_a_builtin_names_both() -> None:
    class AnotherLocal:
        @hookimpl
        def encompass_storage_drivers(self):
            yield StorageDriverRecord(name="local", factory=dict)

    host = PluginHost().load(allow="none-of-them")
    host.register(AnotherLocal(), name="another")
    with pytest.raises(PluginError, match=r"plugin 'local' \(encompass-core\).*plugin 'another'"):
        host.storage_drivers()


def test_a_record_with_an_unusable_name_is_refused() -> None:
    with pytest.raises(PluginError, match="invalid registered name"):
        StorageDriverRecord(name="9 lives", factory=dict)


def test_a_plugin_reusing_a_taken_name_is_the_one_listed_failed() -> None:
    host = PluginHost().load()

    class Impostor:
        pass

    host.register(Impostor(), name="local", dist="impostor-dist")
    assert host.infos["local"].status == "active"
    assert host.infos["local"].distribution == "encompass-core"
    failed = host.infos["local (impostor-dist)"]
    assert failed.status == "failed" and "taken by encompass-core" in failed.error
    assert "local" in host.storage_drivers()


EDITION_DRIVER = FAKE_DRIVER + "\n    CONTRACT_EDITION = {edition}\n"


def test_a_plugin_for_another_contract_edition_is_refused_saying_so(run_cli, site, encompass_home) -> None:
    fake_distribution(site, "oldpool", {"old": "oldpool"},
                      {"oldpool": EDITION_DRIVER.format(driver="old", edition=1)})
    fake_distribution(site, "newpool", {"new": "newpool"},
                      {"newpool": EDITION_DRIVER.format(driver="new", edition=2)})
    env = {**on_path(site)}

    rows = plugin_rows(run_cli("plugins", "--json", env=env))

    assert rows["new"]["status"] == "active" and rows["new"]["contract_edition"] == 2
    old = rows["old"]
    assert (old["status"], old["contract_edition"], old["hooks"]) == ("failed", 1, [])
    assert "written for contract edition 1, and this core speaks edition 2" in old["error"]
    listed = run_cli("plugins", env=env)
    old_line = next(line for line in listed.out.splitlines() if line.startswith("old "))
    assert "failed" in old_line and "contract edition 1" in old_line
    assert "Traceback" not in listed.out + listed.err

    with (encompass_home / "encompass.toml").open("a") as config:
        config.write('\n[pools.legacy]\ndriver = "old"\n')
    refused = run_cli("clone", "anything", "web01", "--pool", "legacy", env=env)
    assert refused.code == 5
    assert "Traceback" not in refused.err and "-v shows the traceback" not in refused.err
    assert "pool 'legacy'" in refused.err and "uses driver 'old'" in refused.err
    assert "plugin 'old' (oldpool) failed to load: it was written for contract edition 1" in refused.err


def test_a_plugin_newer_than_the_core_asks_for_a_newer_core() -> None:
    from encompass_core.provenance import edition_problem

    problem = edition_problem(3)
    assert problem is not None and "upgrade encompass-core" in problem
    assert edition_problem(2) is None
    assert edition_problem(None) is None


def test_plugins_say_where_they_come_from(run_cli, site) -> None:
    """Built-ins are core; the maintained plugins (plugins/ of this tree) are 'plugins'; a
    distribution from anywhere else is 'elsewhere'; the CONTRACT column shows editions."""
    fake_distribution(site, "fakepool", {"fake": "fakepool"},
                      {"fakepool": FAKE_DRIVER.format(driver="fake")})
    rows = plugin_rows(run_cli("plugins", "--json", env={**on_path(site)}))

    assert rows["local"]["origin"] == "core" and rows["local"]["contract_edition"] == 2
    assert rows["fake"]["origin"] == "elsewhere"
    maintained = [row for row in rows.values() if row["distribution"] == "encompass-libvirt"]
    if maintained:  # the libvirt plugin is installed from plugins/ of a source tree
        assert {row["origin"] for row in maintained} == {"plugins"}
        assert {row["contract_edition"] for row in maintained} == {2}


def test_a_plugin_inside_contrib_of_a_source_tree_is_contrib(tmp_path: Path) -> None:
    from encompass_core.provenance import origin_of

    tree = tmp_path / "encompass"
    (tree / "encompass_core").mkdir(parents=True)
    module_dir = tree / "contrib" / "acme" / "encompass_acme"
    module_dir.mkdir(parents=True)
    (module_dir / "plugin.py").write_text("")
    module = types.ModuleType("encompass_acme.plugin")
    module.__file__ = str(module_dir / "plugin.py")
    assert origin_of(module, None) == "contrib"
    module.__file__ = str(tmp_path / "site-packages" / "encompass_acme" / "plugin.py")
    assert origin_of(module, None) == "elsewhere"


LEAKY_DRIVER = """
    import os

    from encompass_core import hookimpl
    from encompass_core.drivers.builtin_storage import SETTINGS
    from encompass_core.drivers.local import LocalStorageDriver
    from encompass_core.records import StorageDriverRecord

    class LeakyDriver(LocalStorageDriver):
        def delete_volume(self, volume):
            os.unlink(volume.location)  # an OSError goes out as it is

    @hookimpl
    def encompass_storage_drivers():
        yield StorageDriverRecord(name="leaky", factory=LeakyDriver, description="lets OSError through",
                                  settings=SETTINGS)
"""


def test_a_driver_letting_an_os_error_through_a_delete_is_still_one_line(run_cli, site, raw_disk,
                                                                          encompass_home, tmp_path):
    fake_distribution(site, "leakypool", {"leaky": "leakypool"}, {"leakypool": LEAKY_DRIVER})
    with open(encompass_home / "encompass.toml", "a", encoding="utf-8") as config:
        config.write(f'\n[pools.leaky]\ndriver = "leaky"\npath = "{tmp_path / "leaky"}"\n')
    env = on_path(site)
    assert run_cli("master", "import", "base", raw_disk, "--pool", "leaky", env=env).code == 0
    assert run_cli("clone", "base", "web01", "--pool", "leaky", "--mode", "full", env=env).code == 0
    volume = Path(run_cli("image", "show", "web01", "--json", env=env).json()["volumes"][0]["location"])

    subprocess.run(["chattr", "+i", str(volume)], check=True)  # even root cannot unlink it
    try:
        refused = run_cli("image", "delete", "web01", env=env)
    finally:
        subprocess.run(["chattr", "-i", str(volume)], check=True)

    assert refused.code == 7
    assert_one_line_error(refused, "pool 'leaky'", f"cannot delete {volume}", "Operation not permitted")
    assert volume.exists()
    assert run_cli("image", "delete", "web01", env=env).code == 0
    assert not volume.exists()
