"""The context every operation works in: configuration, metadata store, plugins, pools."""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from . import config as config_mod
from . import rundir
from .errors import ConfigError
from .store import Store

if TYPE_CHECKING:
    from .plugins import PluginHost


@attrs.define
class Pool:
    """A configured pool and its driver instance."""

    name: str
    section: config_mod.Section
    driver: Any
    context: Context

    def resolve(self, name: str) -> Pool:
        """Another pool of the same context (for cross-pool clones)."""
        return self.context.pool(name)


@attrs.define
class Platform:
    """A configured platform and its driver instance."""

    name: str
    section: config_mod.Section
    driver: Any


class Context:
    """Everything an operation needs; built once per command."""

    def __init__(self, home: Path | None = None,
                 host: PluginHost | Callable[[], PluginHost] | None = None) -> None:
        self.home = Path(home) if home else config_mod.home()
        rundir.use_home(self.home)  # helpers' work files and records go under the home
        self._host = host
        self._pools: dict[str, Pool] = {}
        self._platforms: dict[str, Platform] = {}

    @cached_property
    def config(self) -> config_mod.Config:
        return config_mod.load(self.home / config_mod.CONFIG_NAME)

    @cached_property
    def store(self) -> Store:
        return Store(self.home / "metadata.json")

    @property
    def host(self) -> PluginHost:
        if self._host is None:
            from .plugins import PluginHost  # imported when first needed: it costs start-up

            self._host = PluginHost()
        elif callable(self._host):  # a factory: the host is made when first needed
            self._host = self._host()
        return self._host.load()  # plugins are loaded when first needed, once

    def pool(self, name: str | None = None) -> Pool:
        """The pool called ``name`` (the default pool when None), its driver built once."""
        section = self.config.pool(name)
        if section.name not in self._pools:
            record = self._driver_record(self.host.storage_drivers(), section, "pool")
            driver = record.factory(section, self.config)
            self._pools[section.name] = Pool(section.name, section, driver, self)
        return self._pools[section.name]

    def platform(self, name: str) -> Platform:
        section = self.config.platform(name)
        if section.name not in self._platforms:
            record = self._driver_record(self.host.platform_drivers(), section, "platform")
            self._platforms[section.name] = Platform(section.name, section,
                                                     record.factory(section, self.config))
        return self._platforms[section.name]

    def _driver_record(self, records: dict[str, Any], section: config_mod.Section, what: str) -> Any:
        record = records.get(section.driver)
        if record is None:
            failed = [i for i in self.host.failures() if i.name == section.driver]
            why = f" (plugin '{section.driver}' failed to load: {failed[0].error})" if failed else ""
            known = ", ".join(sorted(records)) or "none"
            raise ConfigError(
                f"{what} '{section.name}' in {self.config.path} uses driver '{section.driver}', which no "
                f"active plugin provides{why}; drivers available: {known}. Install its plugin: "
                f"./setup_plugins {section.driver}"
            )
        return record
