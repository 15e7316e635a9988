"""The context every operation works in: configuration, metadata store, plugins, pools."""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from . import config as config_mod
from .errors import ConfigError, PluginError
from .store import open_store

if TYPE_CHECKING:
    from .plugins import PluginHost
    from .store.protocol import Store


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
        self._host = host
        self._pools: dict[str, Pool] = {}
        self._platforms: dict[str, Platform] = {}
        self._checked_config = False

    @cached_property
    def config(self) -> config_mod.Config:
        return config_mod.load(self.home / config_mod.CONFIG_NAME)

    @cached_property
    def store(self) -> Store:
        return open_store(self.home, self.config)

    @property
    def host(self) -> PluginHost:
        if self._host is None:
            from .plugins import PluginHost  # imported when first needed: it costs start-up

            self._host = PluginHost()
        elif callable(self._host):  # a factory: the host is made when first needed
            self._host = self._host()
        host = self._host.load()  # plugins are loaded when first needed, once
        if not self._checked_config:
            self._checked_config = True  # before checking: check_config asks for the host too
            try:
                self.check_config()  # the whole encompass.toml, before any driver runs
            except BaseException:
                self._checked_config = False
                raise
        return host

    def pool(self, name: str | None = None) -> Pool:
        """The pool called ``name`` (the default pool when None), its driver built once."""
        section = self.config.pool(name)
        if section.name not in self._pools:
            from .contracts import StorageDriver

            record = self._driver_record(self.host.storage_drivers(), section, "pool")
            driver = self._build(record, self._checked(section, record, "pools"), StorageDriver)
            self._pools[section.name] = Pool(section.name, section, driver, self)
        return self._pools[section.name]

    def platform(self, name: str) -> Platform:
        """The platform called ``name``, its driver built once."""
        section = self.config.platform(name)
        if section.name not in self._platforms:
            from .contracts import PlatformDriver

            record = self._driver_record(self.host.platform_drivers(), section, "platform")
            driver = self._build(record, self._checked(section, record, "platforms"), PlatformDriver)
            self._platforms[section.name] = Platform(section.name, section, driver)
        return self._platforms[section.name]

    def opener_settings(self, record: Any) -> dict[str, Any]:
        """The ``[openers.NAME]`` table of an opener, checked against what it declares."""
        from .settings import check_table

        table = self.config.openers.get(record.name, {})
        return check_table(f"{self.config.path}: [openers.{record.name}]", table, record.settings)

    def check_config(self) -> list[str]:
        """Check every table of ``encompass.toml`` against the settings its driver or opener
        declares; the first problem is raised as one line. Returns the tables whose driver no
        active plugin provides (they fail only when used)."""
        unchecked = []
        for kind, sections, records in (("pools", self.config.pools, self.host.storage_drivers()),
                                        ("platforms", self.config.platforms, self.host.platform_drivers())):
            for section in sections.values():
                record = records.get(section.driver)
                if record is None:
                    unchecked.append(f"[{kind}.{section.name}] (driver '{section.driver}')")
                else:
                    self._checked(section, record, kind)
        if not self.config.openers:
            return unchecked  # the openers' records (the opener modules) are imported only when used
        openers = {r.name: r for r in self.host.volume_openers()}
        for name in self.config.openers:
            if name not in openers:
                raise ConfigError(f"{self.config.path}: [openers.{name}]: no such volume opener "
                                  f"(openers: {', '.join(sorted(openers))})")
            self.opener_settings(openers[name])
        return unchecked

    def _checked(self, section: config_mod.Section, record: Any, kind: str) -> config_mod.Section:
        from .settings import check_table

        where = f"{self.config.path}: [{kind}.{section.name}]"
        return attrs.evolve(section, settings=check_table(where, section.settings, record.settings))

    def _build(self, record: Any, section: config_mod.Section, base: type) -> Any:
        from . import rundir  # imported when a driver is first built: it costs start-up

        rundir.use_home(self.home)  # the helpers drivers start record themselves under the home
        driver = record.factory(section, self.config)
        if not isinstance(driver, base):
            plugin = self.host.provider_of(record) or "?"
            raise PluginError(f"driver '{record.name}' of plugin '{plugin}' does not derive from "
                              f"encompass_core.contracts.{base.__name__} (second edition of the "
                              "contract); update the plugin")
        return driver

    def close(self) -> None:
        """Let every driver built here release what it holds (the end of a command)."""
        for pool in self._pools.values():
            pool.driver.close()
        if "store" in self.__dict__:  # built (cached_property) during this command
            self.store.close()

    def _driver_record(self, records: dict[str, Any], section: config_mod.Section, what: str) -> Any:
        record = records.get(section.driver)
        if record is None:
            info = self.host.infos.get(section.driver)
            where = f"{what} '{section.name}' in {self.config.path} uses driver '{section.driver}'"
            if info is not None and info.status == "disabled":
                from .plugins import ALLOW_ENV  # imported already: the host is loaded

                raise ConfigError(f"{where}, whose plugin is installed but left out by "
                                  f"{ALLOW_ENV}; add '{section.driver}' to it, or unset it")
            failed = [i for i in self.host.failures() if i.name == section.driver]
            why = f" (plugin '{section.driver}' failed to load: {failed[0].error})" if failed else ""
            known = ", ".join(sorted(records)) or "none"
            raise ConfigError(
                f"{where}, which no active plugin provides{why}; drivers available: {known}. "
                f"Install its plugin: ./setup_plugins {section.driver}"
            )
        return record
