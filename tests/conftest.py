"""Shared fixtures: a fresh ENCOMPASS_HOME, the real ``encompass`` console script, real masters."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import NamedTuple

import pytest
from pg_server import pg_dsn, pg_server, use_postgresql  # noqa: F401 (fixtures)

ENCOMPASS = Path(sys.executable).with_name("encompass")
MIB = 1 << 20


class CliResult(NamedTuple):
    """What a run of ``encompass`` gave back (unpacks as ``code, out, err``)."""

    code: int
    out: str
    err: str

    def json(self):
        return json.loads(self.out)


def cli_env(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of an ``encompass`` subprocess: this home, no user allow-list."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENCOMPASS_")}
    env["ENCOMPASS_HOME"] = str(home)
    # The plugin index lives under XDG_CACHE_HOME: keep the tests' indexes out of ~/.cache.
    env["XDG_CACHE_HOME"] = str(home.parent / "xdg-cache")
    env["COLUMNS"] = "200"
    env.update(extra or {})
    return env


@pytest.fixture
def encompass_home(tmp_path: Path, store_backend: str, request: pytest.FixtureRequest) -> Path:
    """A temporary ENCOMPASS_HOME made by ``encompass init`` (default config, local pool), its
    metadata in the ``store_backend`` the test runs on (a fresh PostgreSQL database for
    ``postgresql``)."""
    home = tmp_path / "home"
    done = subprocess.run([str(ENCOMPASS), "init"], env=cli_env(home), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    if store_backend == "postgresql":
        request.getfixturevalue("pg_dsn")
        use_postgresql(home)
    return home


# -- which backend a test runs on ----------------------------------------------------------------
#: The backends the store and operation tests run against.
STORE_BACKENDS = ["tinydb", "postgresql"]

#: Where a test touching the repository runs once per backend (the store and operation tests);
#: elsewhere (scenarios, slow tests) it runs once, on the default backend.
_TESTS = Path(__file__).resolve().parent
EVERY_BACKEND_UNDER = (_TESTS / "core", _TESTS / "customization")


def backends_for(item: pytest.Item | pytest.Function) -> list[str]:
    """The backends a test runs on.

    ``@pytest.mark.tinydb_only`` (a test of the embedded backend's files): TinyDB alone;
    ``@pytest.mark.postgresql_only``: PostgreSQL alone.
    ``$ENCOMPASS_TEST_BACKEND`` set: that backend alone (a quick run by hand).
    Otherwise both for the store and operation tests that are not slow, TinyDB for the others.
    """
    if item.get_closest_marker("tinydb_only"):
        return ["tinydb"]
    if item.get_closest_marker("postgresql_only"):
        return ["postgresql"]
    chosen = os.environ.get("ENCOMPASS_TEST_BACKEND")
    if chosen:
        if chosen not in STORE_BACKENDS:
            raise pytest.UsageError(f"ENCOMPASS_TEST_BACKEND should be one of {STORE_BACKENDS}, "
                                    f"not {chosen!r}")
        return [chosen]
    if item.get_closest_marker("slow") or not any(
            Path(item.path).is_relative_to(top) for top in EVERY_BACKEND_UNDER):
        return ["tinydb"]
    return list(STORE_BACKENDS)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test that reaches the repository (``store_backend``, ``new_store``, ``encompass_home``
    and every fixture built on them) runs once per backend :func:`backends_for` names."""
    if "store_backend" in metafunc.fixturenames:
        backends = backends_for(metafunc.definition)
        if len(backends) > 1:
            metafunc.parametrize("store_backend", backends)


@pytest.fixture
def store_backend(request: pytest.FixtureRequest) -> str:
    """The backend the test runs on: its parameter, or the one backend :func:`backends_for` gives."""
    return getattr(request, "param", None) or backends_for(request.node)[0]


@pytest.fixture
def repository(encompass_home: Path):
    """The repository of ``encompass_home``, opened on the backend its ``encompass.toml`` names
    (as the CLI opens it), for a test to read what the CLI wrote; closed at the end."""
    from encompass_core import config
    from encompass_core.store import open_store

    store = open_store(encompass_home, config.load(encompass_home / config.CONFIG_NAME))
    yield store
    store.close()


@pytest.fixture
def new_store(store_backend: str, tmp_path: Path, request: pytest.FixtureRequest):
    """An empty repository of the ``store_backend`` (a :class:`encompass_core.store.protocol.Store`)."""
    if store_backend == "postgresql":
        from encompass_core.store.postgresql import PostgresStore

        store = PostgresStore(request.getfixturevalue("pg_dsn"))
    else:
        from encompass_core.store import Store

        store = Store(tmp_path / "repo" / "metadata.json")
    yield store
    store.close()


@pytest.fixture
def run_cli(encompass_home: Path) -> Callable[..., CliResult]:
    """Run the real ``encompass`` script in ``encompass_home``: ``run_cli("image", "list")``."""

    def run(*args: str, env: Mapping[str, str] | None = None, timeout: float = 120) -> CliResult:
        done = subprocess.run(
            [str(ENCOMPASS), *map(str, args)], env=cli_env(encompass_home, env),
            capture_output=True, text=True, timeout=timeout,
        )
        return CliResult(done.returncode, done.stdout, done.stderr)

    return run


@pytest.fixture
def pool_dir(encompass_home: Path) -> Path:
    """Where the default local pool keeps its volumes."""
    return encompass_home / "pool"


def make_raw_master(path: Path, size_mib: int = 32) -> Path:
    """A sparse raw disk holding a fresh ext4 filesystem."""
    subprocess.run(["truncate", "-s", f"{size_mib}M", str(path)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(path)], check=True)
    return path


def make_qcow2_master(path: Path, size_mib: int = 32) -> Path:
    """A qcow2 disk with a few MiB of real data in it."""
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), f"{size_mib}M"], check=True)
    qemu_io(path, "write -P 0x5a 0 4M")
    return path


def qemu_io(path: Path, command: str) -> None:
    subprocess.run(["qemu-io", "-c", command, str(path)], check=True, capture_output=True)


def qemu_info(path: str | Path) -> dict:
    done = subprocess.run(["qemu-img", "info", "--output=json", "-U", str(path)],
                          check=True, capture_output=True, text=True)
    return json.loads(done.stdout)


def sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(4 * MIB):
            digest.update(chunk)
    return digest.hexdigest()


@pytest.fixture
def raw_disk(tmp_path: Path) -> Path:
    """A 32 MiB sparse raw disk with an ext4 filesystem, not yet imported."""
    return make_raw_master(tmp_path / "disk.raw")


@pytest.fixture
def qcow2_disk(tmp_path: Path) -> Path:
    """A 32 MiB qcow2 disk with 4 MiB of data, not yet imported."""
    return make_qcow2_master(tmp_path / "disk.qcow2")


@pytest.fixture
def master(run_cli, raw_disk: Path) -> str:
    """Master ``base`` imported from the raw disk; its name."""
    result = run_cli("master", "import", "base", raw_disk)
    assert result.code == 0, result.err
    return "base"


def image_records(run_cli) -> dict[str, dict]:
    """``encompass image list --json``, by name."""
    result = run_cli("image", "list", "--json")
    assert result.code == 0, result.err
    return {row["name"]: row for row in result.json()}


def volume_path(run_cli, name: str, index: int = 0) -> Path:
    """Where image ``name`` keeps volume ``index`` (from ``image show --json``)."""
    result = run_cli("image", "show", name, "--json")
    assert result.code == 0, result.err
    return Path(result.json()["volumes"][index]["location"])


def assert_one_line_error(result: CliResult, *words: str) -> None:
    """A user error: non-zero exit, one line on stderr naming ``words``, no traceback."""
    assert result.code != 0, result
    assert "Traceback" not in result.err and "Traceback" not in result.out
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("encompass: "), lines[0]
    for word in words:
        assert word in lines[0], f"{word!r} not in {lines[0]!r}"

