"""Start-up: a command imports what it uses, and only that.

Every ``encompass`` command pays, before doing its own work, for what it imports: a listing
that imported the clone and customize operations, the plugin host or a plugin's driver would
pay for all of them on each run (at 10,000 images, and in every process of a busy utility
server). The CLI runs here in a child process, as ``encompass`` does, which then lists the
modules it imported.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import cli_env

#: Runs ``main(ARGS)`` as the console script does, then writes every imported module's name.
PROBE = """
import sys
from encompass_core.cli import main
try:
    main(sys.argv[2:])
except SystemExit as exc:
    if exc.code:
        raise
names = sorted(sys.modules)
if "tokenize" in sys.modules and sys.modules["tokenize"]._compile.cache_info().misses:
    names.append("<tokenizer-used>")
with open(sys.argv[1], "w") as out:
    out.write("\\n".join(names))
"""

#: What a listing must not import: cloning, customizing, deploying, the plugin host (and with
#: it every plugin's entry point), the drivers.
NOT_FOR_LISTINGS = (
    "encompass_core.operations.clone",
    "encompass_core.operations.customize",
    "encompass_core.operations.deploy",
    "encompass_core.operations.workers",
    "encompass_core.customization.openers",
    "encompass_core.contracts",
    "encompass_core.plugins",
    "encompass_core.drivers.local",
    "pluggy",
    "encompass_core.plugin_index",
)


def imported_by(home: Path, tmp_path: Path, *args: str) -> set[str]:
    """The modules ``encompass ARGS`` imported, run in ``home``."""
    listing = tmp_path / "modules.txt"
    done = subprocess.run([sys.executable, "-c", PROBE, str(listing), *args], env=cli_env(home),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return set(listing.read_text().split())


def unwanted(modules: set[str], backend: str) -> list[str]:
    found = [m for m in NOT_FOR_LISTINGS if m in modules]
    found += sorted(m for m in modules if m.startswith("encompass_") and not m.startswith("encompass_core"))
    if backend == "tinydb":
        found += sorted(m for m in modules if m.split(".")[0] == "psycopg")
    return found


def test_listing_and_showing_import_no_operation_plugin_or_driver(run_cli, master, encompass_home,
                                                                  store_backend, tmp_path):
    assert run_cli("clone", master, "web1").code == 0
    for args in (("image", "list"), ("image", "list", "--json"), ("image", "show", "web1"),
                 ("image", "show", master), ("master", "list")):
        assert unwanted(imported_by(encompass_home, tmp_path, *args), store_backend) == [], args


def test_the_probe_sees_what_a_command_imports(run_cli, master, encompass_home, tmp_path):
    # The same probe on a command that clones: the operation and the plugins are there.
    modules = imported_by(encompass_home, tmp_path, "clone", master, "web2")
    assert {"encompass_core.operations.clone", "encompass_core.plugins"} <= modules
    assert run_cli("image", "show", "web2").code == 0
    # A clone opens no volume: the openers are not imported while no [openers.*] table asks
    # for their settings to be checked.
    assert "encompass_core.customization.openers" not in modules
    # attrs reads each field converter's signature: a builtin's (``converter=tuple``) is parsed
    # from its text by the tokenizer, whose pattern alone takes 5 ms to compile.
    assert "<tokenizer-used>" not in modules


def test_an_openers_table_is_checked_by_any_command(run_cli, master, encompass_home):
    with open(encompass_home / "encompass.toml", "a") as config:
        config.write('\n[openers.no-such-opener]\nsetting = 1\n')
    result = run_cli("clone", master, "web3")
    assert result.code == 5
    assert "[openers.no-such-opener]: no such volume opener" in result.err


def test_help_reads_no_configuration_or_metadata(encompass_home, tmp_path):
    modules = imported_by(encompass_home, tmp_path, "--help")
    assert "encompass_core.context" not in modules
    assert not [m for m in modules if m.startswith("encompass_core.operations.")]
