"""``encompass.toml`` in ``ENCOMPASS_HOME``: named storage pools and machine platforms.

Each pool and platform names its ``driver`` and carries that driver's settings. Secrets are
never written in the file: a setting ``<name>_env = "VAR"`` reads the secret from the
environment, ``<name>_file = "path"`` from a file only its owner may read (mode 0600).
"""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path
from typing import Any

import attrs

from .errors import ConfigError, NotFound
from .model import validate_name
from .settings import TYPE_NAMES, Setting, check_table

CONFIG_NAME = "encompass.toml"

DEFAULT_CONFIG = """\
# Encompass configuration. Pools keep volumes; platforms offer machines.
# Paths are relative to this file's directory unless absolute.

[defaults]
pool = "local"          # where masters are imported and clones made unless --pool says
clone_mode = "cow"      # cow (qcow2 overlay) or full (independent copy)
parallel = 4            # clones made at once unless --parallel says

[pools.local]
driver = "local"
path = "pool"
max_chain_depth = 8     # clones of clones of ... before a full clone or flatten is needed
concurrency = 4         # clones made in this pool at once, at the most
copy_timeout = 3600     # seconds a whole-volume copy may take before it is stopped

# Ways into volumes' files take settings too, e.g.:
# [openers.loop]
# allow_loop_mount = true   # as root, mount raw images through a loop device
# [openers.guestfs]
# force_tcg = true          # libguestfs' appliance under software emulation (no usable KVM)
# timeout = 300             # seconds one libguestfs command (booting included) may take
# [openers.extfs]
# timeout = 600             # seconds one debugfs request may take (also [openers.qcow2-fuse])
"""


def home() -> Path:
    """``$ENCOMPASS_HOME``, or ``~/.encompass``."""
    return Path(os.environ.get("ENCOMPASS_HOME") or Path.home() / ".encompass").expanduser()


# How a setting's expected type is named in messages.
_KIND_NAMES = TYPE_NAMES


@attrs.frozen
class Section:
    """One ``[pools.NAME]`` or ``[platforms.NAME]`` table."""

    name: str
    driver: str
    settings: dict[str, Any]

    def setting(self, key: str, default: Any = None, kind: type | None = None) -> Any:
        """A setting, checked to be of ``kind`` when given."""
        value = self.settings.get(key, default)
        if kind is not None and value is not None and (
            not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool)
        ):
            wanted = _KIND_NAMES.get(kind, f"of type {kind.__name__}")
            raise ConfigError(f"setting '{key}' of '{self.name}' should be {wanted}, found {value!r}")
        return value


@attrs.frozen
class Config:
    """The parsed configuration."""

    path: Path
    defaults: dict[str, Any]
    pools: dict[str, Section]
    platforms: dict[str, Section]
    openers: dict[str, dict[str, Any]] = attrs.field(factory=dict)  # settings of volume openers
    store: dict[str, Any] = attrs.field(factory=dict)  # [store]: the metadata backend (checked)

    @property
    def home(self) -> Path:
        return self.path.parent

    def resolve_path(self, value: str) -> Path:
        """A path setting, relative to the configuration's directory."""
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.home / path

    def pool(self, name: str | None = None) -> Section:
        name = name or self.defaults.get("pool", "local")
        try:
            return self.pools[name]
        except KeyError:
            known = ", ".join(sorted(self.pools)) or "none"
            raise NotFound(
                f"no pool named '{name}' in {self.path} (pools: {known}); add a [pools.{name}] table"
            ) from None

    def platform(self, name: str) -> Section:
        try:
            return self.platforms[name]
        except KeyError:
            known = ", ".join(sorted(self.platforms)) or "none"
            raise NotFound(
                f"no platform named '{name}' in {self.path} (platforms: {known}); "
                f"add a [platforms.{name}] table"
            ) from None


def load(path: Path | None = None) -> Config:
    """Read and check the configuration; a missing file gives the built-in default."""
    path = path or home() / CONFIG_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = DEFAULT_CONFIG
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path} is not UTF-8 text (byte {exc.start} cannot be decoded); save it as UTF-8"
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    return _parse(path, data)


def _parse(path: Path, data: dict[str, Any]) -> Config:
    unknown = set(data) - {"defaults", "pools", "platforms", "openers", "store"}
    if unknown:
        raise ConfigError(
            f"{path}: unknown table(s) {', '.join(sorted(unknown))}; "
            "expected [defaults], [store], [pools.NAME], [platforms.NAME], [openers.NAME]"
        )
    store = data.get("store", {})
    if not isinstance(store, dict):
        raise ConfigError(f"{path}: 'store' must be a table: [store] backend = \"tinydb\"")
    _check_store(path, store)
    openers = data.get("openers", {})
    if not isinstance(openers, dict) or not all(isinstance(t, dict) for t in openers.values()):
        raise ConfigError(f"{path}: 'openers' must hold tables like [openers.loop]")
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        raise ConfigError(f"{path}: 'defaults' must be a table")
    _check_defaults(path, defaults)
    sections: dict[str, dict[str, Section]] = {}
    for kind in ("pools", "platforms"):
        tables = data.get(kind, {})
        if not isinstance(tables, dict):
            raise ConfigError(f"{path}: '{kind}' must hold tables like [{kind}.NAME]")
        parsed = {}
        for name, table in tables.items():
            where = f"{path}: [{kind}.{name}]"
            try:
                validate_name(name, kind[:-1])
            except Exception as exc:
                raise ConfigError(f"{where}: {exc}") from None
            if not isinstance(table, dict):
                raise ConfigError(f"{where} must be a table")
            driver = table.get("driver")
            if not isinstance(driver, str) or not driver:
                raise ConfigError(f"{where} needs a driver = \"...\" setting")
            for key in table:
                if _looks_secret(key):  # whatever its type: password = 1234 is a secret too
                    raise ConfigError(
                        f"{where}: do not write the secret '{key}' in the file; use "
                        f"{key}_env = \"VARIABLE\" or {key}_file = \"path (mode 0600)\""
                    )
            settings = {k: v for k, v in table.items() if k != "driver"}
            parsed[name] = Section(name=name, driver=driver, settings=settings)
        sections[kind] = parsed
    return Config(path=path, defaults=defaults, pools=sections["pools"],
                  platforms=sections["platforms"], openers=openers, store=store)


# [defaults]: what each key may hold (checked like a driver's settings).
DEFAULTS_SETTINGS = (
    Setting("pool", str, help="the pool imports and clones go to unless --pool says"),
    Setting("clone_mode", str, choices=("cow", "full"), help="how clones are made unless --mode says"),
    Setting("parallel", int, minimum=1, help="clones made at once unless --parallel says"),
)


def _check_defaults(path: Path, defaults: dict[str, Any]) -> None:
    """Refuse unknown keys and values of the wrong type in ``[defaults]``: each is used far
    from here, where a bad one would fail without naming the file."""
    check_table(f"{path}: [defaults]", defaults, DEFAULTS_SETTINGS, ignore=())


# [store]: which backend keeps the metadata, and where a server's DSN is read from.
STORE_SETTINGS = (
    Setting("backend", str, "tinydb", choices=("tinydb", "postgresql"), help="where the metadata lives"),
    Setting("dsn", secret=True, help="the PostgreSQL connection string"),
    Setting("lease_seconds", float, minimum=1, help="how long a dead server's operations stay held"),
    Setting("lease_renew_seconds", float, minimum=0.1, help="how often a live process renews its lease"),
)


def _check_store(path: Path, store: dict[str, Any]) -> None:
    """Refuse unknown keys, unknown backends and a DSN written in the file (it may hold a
    password: only its name is ever read from here, and no value is repeated in a message)."""
    for key in store:
        if key in ("dsn", "password", "url", "uri", "conninfo") or _looks_secret(key):
            raise ConfigError(
                f"{path}: [store] do not write the {key} in the file (it may hold a password); use "
                'dsn_env = "VARIABLE" or dsn_file = "path (mode 0600)"'
            )
    check_table(f"{path}: [store]", store, STORE_SETTINGS, ignore=())
    backend = store.get("backend", "tinydb")
    if "dsn_env" in store and "dsn_file" in store:
        raise ConfigError(f"{path}: [store] give dsn_env or dsn_file, not both")
    if backend == "postgresql" and not ({"dsn_env", "dsn_file"} & set(store)):
        raise ConfigError(f"{path}: [store] backend = \"postgresql\" needs dsn_env = \"VARIABLE\" or "
                          'dsn_file = "path (mode 0600)" holding the connection string')
    if backend == "tinydb" and ({"dsn_env", "dsn_file"} & set(store)):
        raise ConfigError(f"{path}: [store] dsn_env and dsn_file are for backend = \"postgresql\"")


def store_dsn(config: Config) -> str:
    """The PostgreSQL connection string ``[store]`` points at (never printed)."""
    section = Section(name="store", driver=config.store.get("backend", "tinydb"),
                      settings=config.store)
    value = secret(section, "dsn", config)
    if not value:
        raise ConfigError(f"{config.path}: [store] names no dsn_env or dsn_file")
    return value


# A second line of defence behind the settings drivers declare (encompass_core.settings): keys
# that look like secrets are refused even in a table whose driver is not installed, so that
# `encompass pool list` can never print one.
_SECRET_WORDS = ("password", "passphrase", "secret", "community", "token", "api_key", "apikey",
                 "private_key")


def _looks_secret(key: str) -> bool:
    return any(word in key for word in _SECRET_WORDS) and not key.endswith(("_env", "_file"))


def secret(section: Section, name: str, config: Config | None = None) -> str | None:
    """Read the secret ``name`` of a pool or platform from its ``_env`` or ``_file`` setting."""
    var = section.settings.get(f"{name}_env")
    if var:
        value = os.environ.get(var)
        if value is None:
            raise ConfigError(f"'{section.name}' reads its {name} from ${var}, which is not set")
        return value
    file = section.settings.get(f"{name}_file")
    if file:
        path = config.resolve_path(file) if config else Path(file)
        try:
            mode = path.stat().st_mode
        except OSError as exc:
            raise ConfigError(f"cannot read the {name} file {path}: {exc.strerror}") from exc
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(f"{path} holds a secret but others may read it; chmod 600 {path}")
        return path.read_text().strip()
    return None


def write_default(home_dir: Path, force: bool = False) -> Path:
    """Create ``home_dir`` with the default configuration; return the file's path."""
    path = home_dir / CONFIG_NAME
    try:
        home_dir.mkdir(parents=True, exist_ok=True)
        if path.exists() and not force:
            return path
        path.write_text(DEFAULT_CONFIG, encoding="utf-8")
    except OSError as exc:
        raise home_error(home_dir, exc) from None
    return path


def home_error(home_dir: Path, exc: OSError) -> ConfigError:
    """The one-line error for an ``ENCOMPASS_HOME`` that cannot be made or written."""
    where = f" ({exc.filename})" if exc.filename and str(exc.filename) != str(home_dir) else ""
    return ConfigError(
        f"cannot set up ENCOMPASS_HOME {home_dir}{where}: {exc.strerror or exc}; point "
        "ENCOMPASS_HOME (or --home) at a directory you can write"
    )


def toml_table(header: str, table: dict[str, Any]) -> str:
    """``table`` (strings, numbers, booleans, lists of them) as a ``[header]`` table of
    encompass.toml."""
    def value(item: Any) -> str:
        if isinstance(item, list | tuple):
            return "[" + ", ".join(value(element) for element in item) + "]"
        if isinstance(item, bool):
            return "true" if item else "false"
        if isinstance(item, int | float):
            return repr(item)
        return '"' + str(item).replace("\\", "\\\\").replace('"', '\\"') + '"'

    return f"\n[{header}]\n" + "".join(f"{key} = {value(item)}\n" for key, item in table.items())
