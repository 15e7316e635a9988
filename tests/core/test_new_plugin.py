"""``setup_plugins --new`` makes plugins that install, are listed, and pass their tests as made.

One plugin of each kind is generated into a temporary directory and installed (editable, no
dependencies) into a throwaway virtual environment that sees this one's packages; there
``encompass plugins`` lists them and their own tests run, unchanged, as a vendor would run them.
"""

from __future__ import annotations

import ast
import inspect
import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from encompass_core.contracts import PlatformDriver, StorageDriver

ROOT = Path(__file__).resolve().parents[2]
SETUP = ROOT / "setup_plugins"
KINDS = {"storage": "acmesan", "platform": "acmebmc", "customizer": "acmeitem", "opener": "acmetar"}


def run(*command: str | Path, cwd: Path | None = None, env: dict | None = None) -> str:
    done = subprocess.run([str(part) for part in command], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=600)
    assert done.returncode == 0, f"{command}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> dict[str, Path]:
    """One generated plugin of each kind, by kind."""
    where = tmp_path_factory.mktemp("vendor")
    for kind, name in KINDS.items():
        out = run(sys.executable, SETUP, "--new", name, "--kind", kind, "--dir", where)
        assert f"made {where / name}" in out
    return {kind: where / name for kind, name in KINDS.items()}


@pytest.fixture(scope="module")
def venv(made, tmp_path_factory) -> Path:
    """A throwaway venv seeing this environment's packages, the generated plugins installed."""
    path = tmp_path_factory.mktemp("venv") / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", path)  # this environment's pip will do
    site = subprocess.run([path / "bin" / "python", "-c", "import sysconfig; "
                           "print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # addsitedir (not a bare path) so the editable installs' own .pth files there count too.
    Path(site, "outer-venv.pth").write_text(
        f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})\n")
    # As ./setup_plugins installs them: editable (the build backend comes from the package index).
    run(path / "bin" / "python", "-m", "pip", "install", "-q", "--no-deps",
        "--disable-pip-version-check", *[arg for plugin in made.values() for arg in ("-e", plugin)])
    return path


def test_bad_requests_are_one_line_and_make_nothing(tmp_path):
    for args, said in ((["--new", "Acme", "--kind", "storage"], "cannot name a plugin"),
                       (["--new", "libvirt", "--kind", "storage"], "exists already"),
                       (["--new", "acme"], "--new NAME and --kind KIND go together")):
        done = subprocess.run([sys.executable, SETUP, *args, "--dir", str(tmp_path)],
                              capture_output=True, text=True)
        assert done.returncode != 0 and said in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_each_plugin_holds_its_kind_only(made):
    for kind, root in made.items():
        name = KINDS[kind]
        package = root / f"encompass_{name}"
        modules = sorted(p.name for p in package.glob("*.py"))
        expected = {"storage": ["fake_array.py", "storage.py"],
                    "platform": ["fake_chassis.py", "platform.py"],
                    "customizer": ["customizer.py"], "opener": ["opener.py"]}[kind]
        assert modules == sorted(["__init__.py", "plugin.py", *expected])
        assert sorted(p.name for p in (root / "tests").glob("test_*.py")) == [f"test_{name}_{kind}.py"]
        assert (root / "README.md").is_file()
        project = (root / "pyproject.toml").read_text()
        assert f'name = "encompass-{name}"' in project
        assert f'{name} = "encompass_{name}.plugin"' in project and "[tool.encompass]" in project
        everything = "".join(p.read_text() for p in root.rglob("*") if p.is_file())
        assert "template" not in everything.lower()
        assert "# kind:" not in everything and "<!-- kind" not in everything


def test_plugin_py_holds_hook_implementations_only(made):
    for kind, root in made.items():
        tree = ast.parse((root / f"encompass_{KINDS[kind]}" / "plugin.py").read_text())
        functions = [node for node in tree.body if isinstance(node, ast.FunctionDef)]
        assert [f.name for f in functions] == [{
            "storage": "encompass_storage_drivers", "platform": "encompass_platform_drivers",
            "customizer": "encompass_customizers", "opener": "encompass_volume_openers"}[kind]]
        assert all(ast.unparse(f.decorator_list[0]) == "hookimpl" for f in functions)
        assert not [node for node in tree.body if isinstance(node, ast.ClassDef)]


@pytest.mark.parametrize(("kind", "contract", "module"), [("storage", StorageDriver, "storage.py"),
                                                          ("platform", PlatformDriver, "platform.py")])
def test_the_driver_has_every_contract_method_with_its_docstring(made, kind, contract, module):
    tree = ast.parse((made[kind] / f"encompass_{KINDS[kind]}" / module).read_text())
    driver = next(node for node in tree.body if isinstance(node, ast.ClassDef)
                  and node.name.endswith("Driver"))
    methods = {node.name: ast.get_docstring(node) for node in driver.body
               if isinstance(node, ast.FunctionDef)}
    wanted = {name: inspect.getdoc(member) for name, member in vars(contract).items()
              if inspect.isfunction(member) and not name.startswith("_")}
    wanted.pop("kind", None)  # a property the base class answers from the capabilities
    assert sorted(set(wanted) - set(methods)) == [], "contract methods missing from the driver"
    for name, doc in wanted.items():
        assert methods[name] == doc, f"{name}: the docstring differs from the contract's"


@pytest.mark.slow  # a minute or more: a venv, four editable installs, four test runs
def test_the_plugins_install_are_listed_and_pass_their_tests(made, venv):
    python = venv / "bin" / "python"
    env = dict(os.environ, ENCOMPASS_HOME=str(venv.parent / "home"), COLUMNS="200")
    env.pop("ENCOMPASS_PLUGINS", None)
    listed = json.loads(run(python, "-c", "from encompass_core.cli import main; main()",
                            "plugins", "--json", env=env))
    rows = {row["name"]: row for row in listed}
    for name in KINDS.values():
        row = rows[name]
        assert row["status"] == "active", row
        assert (row["distribution"], row["version"]) == (f"encompass-{name}", "0.1.0")
        assert (row["origin"], row["contract_edition"]) == ("elsewhere", 2)
        assert len(row["hooks"]) == 1
    for root in made.values():
        out = run(python, "-m", "pytest", "-q", "-p", "no:cacheprovider", root, cwd=root, env=env)
        assert " passed" in out and "failed" not in out and "skipped" not in out, out
