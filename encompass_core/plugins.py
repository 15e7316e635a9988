"""The plugin host: finds and imports plugins (the entry points of ``encompass.plugins``),
pluggy registers and calls them.

Which plugins are installed is read from the plugin index (:mod:`encompass_core.plugin_index`)
while the installation is unchanged, else looked up through importlib.metadata; each is then
imported as ``EntryPoint.load`` would.

Built-in drivers (``DEFAULT_PLUGINS``) register through the same hooks as external plugins.
A plugin that fails to load is recorded (``failed``) and reported, never fatal unless it was
asked for by name. ``ENCOMPASS_PLUGINS`` (comma separated names) allow-lists external plugins;
the others are listed as ``disabled``.
"""

from __future__ import annotations

import importlib
import os
import traceback
from collections.abc import Callable
from typing import Any

import attrs
import pluggy

from . import hookspecs, plugin_index, provenance
from .editions import CONTRACT_EDITION
from .errors import PluginError
from .records import (
    CliCommandRecord,
    CustomizerRecord,
    ItemPresetRecord,
    PlatformDriverRecord,
    StorageDriverRecord,
    VolumeOpenerRecord,
)

GROUP = "encompass.plugins"
ALLOW_ENV = "ENCOMPASS_PLUGINS"

#: Modules of the core that register built-in drivers through the hooks.
DEFAULT_PLUGINS = (
    ("local", "encompass_core.drivers.builtin_storage"),
    ("native-clone", "encompass_core.drivers.cloning"),
    ("builtin-openers", "encompass_core.customization.builtin_openers"),
    ("builtin-items", "encompass_core.customization.builtin_items"),
)


@attrs.frozen
class PluginInfo:
    """What ``encompass plugins`` shows of one plugin."""

    name: str
    distribution: str
    version: str
    status: str  # active | failed | disabled
    hooks: tuple[str, ...] = ()
    error: str | None = None
    traceback: str | None = None
    builtin: bool = False
    #: core, plugins, contrib or elsewhere (:mod:`encompass_core.provenance`).
    origin: str = "elsewhere"
    #: The contract edition the plugin says it was written for (None: it does not say).
    contract_edition: int | None = None


class PluginHost:
    """Loads plugins once and answers what they register."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("encompass")
        self.pm.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}
        self._cache: dict[str, Any] = {}
        self.loaded = False
        #: Called once plugins are loaded (the CLI reports failures through it).
        self.after_load: Callable[[PluginHost], None] | None = None
        #: Called when a plugin fails in a registration hook (the CLI reports it, one line).
        self.on_hook_failure: Callable[[PluginInfo], None] | None = None

    # -- loading --------------------------------------------------------------------------
    def load(self, allow: str | None = None) -> PluginHost:
        """Register the built-ins, then every external plugin allowed by ``ENCOMPASS_PLUGINS``.

        Loads once; later calls return at once. Which plugins are installed comes from the
        plugin index while the installation has not changed (:mod:`encompass_core.plugin_index`),
        else from a full look at the installed distributions, which writes the index anew.
        """
        if self.loaded:
            return self
        self.loaded = True
        key = plugin_index.installation_key()
        index = plugin_index.read(GROUP, key)
        core_version = index.core_version if index is not None else _version("encompass-core")
        for name, module_name in DEFAULT_PLUGINS:
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                if exc.name == module_name:
                    continue  # an optional built-in not present in this build
                self._failed(name, "encompass-core", core_version, exc, builtin=True)
                continue
            except Exception as exc:  # noqa: BLE001 - a broken built-in is reported, not fatal
                self._failed(name, "encompass-core", core_version, exc, builtin=True)
                continue
            self._register(name, module, "encompass-core", core_version, builtin=True,
                           origin="core", edition=CONTRACT_EDITION)
        allow = os.environ.get(ALLOW_ENV) if allow is None else allow
        allowed = None if allow in (None, "") else {n.strip() for n in allow.split(",") if n.strip()}
        if index is None:  # the full look (importlib.metadata), remembered for the next commands
            index = plugin_index.PluginIndex(core_version, _installed_plugins())
            plugin_index.write(GROUP, key, index)
        self._load_external(index.plugins, allowed)
        if self.after_load is not None:
            self.after_load(self)
        return self

    def _load_external(self, plugins: tuple[plugin_index.IndexedPlugin, ...],
                       allowed: set[str] | None) -> None:
        """Load the allowed plugins (in name order); list the others as disabled, unimported."""
        for entry in sorted(plugins, key=lambda p: p.name):
            if allowed is not None and entry.name not in allowed:
                self._disabled(entry)
                continue
            try:
                plugin = entry.load()
            except Exception as exc:  # noqa: BLE001 - a broken plugin is reported, not fatal
                self._failed(entry.name, entry.distribution, entry.version, exc)
                self.infos[entry.name] = attrs.evolve(self.infos[entry.name],
                                                      origin=provenance.origin_of(None, entry.installed_from))
                continue
            self._admit(entry, plugin)

    def _disabled(self, entry: plugin_index.IndexedPlugin) -> None:
        self.infos[entry.name] = PluginInfo(entry.name, entry.distribution, entry.version, "disabled",
                                            error=f"not in {ALLOW_ENV}",
                                            origin=provenance.origin_of(None, entry.installed_from))

    def _admit(self, entry: plugin_index.IndexedPlugin, plugin: Any) -> None:
        """Register a loaded plugin, unless it was written for a contract edition this core
        does not speak (refused before any of its code runs or registers)."""
        name, dist, version = entry.name, entry.distribution, entry.version
        origin = provenance.origin_of(plugin, entry.installed_from)
        edition = provenance.declared_edition(plugin)
        refused = provenance.edition_problem(edition)
        if refused is not None:
            self.infos[name] = PluginInfo(name, dist, version, "failed", error=refused, origin=origin,
                                          contract_edition=edition)
            return
        try:
            if isinstance(plugin, type):
                plugin = plugin()
        except Exception as exc:  # noqa: BLE001
            self._failed(name, dist, version, exc)
            return
        self._register(name, plugin, dist, version, origin=origin, edition=edition)

    def _register(self, name: str, plugin: Any, dist: str, version: str, builtin: bool = False,
                  origin: str = "elsewhere", edition: int | None = None) -> None:
        if name in self.infos:
            # The first keeps the name and stays active; the second is listed as failed.
            first = self.infos[name]
            self.infos[f"{name} ({dist})"] = PluginInfo(
                name, dist, version, "failed", builtin=builtin,
                error=f"the plugin name '{name}' is taken by {first.distribution}; rename one entry point",
            )
            return
        try:
            self.pm.register(plugin, name=name)
        except Exception as exc:  # noqa: BLE001 - pluggy validation errors and the like
            self._failed(name, dist, version, exc, builtin=builtin)
            return
        hooks = tuple(sorted(h.name for h in self.pm.get_hookcallers(plugin) or ()))
        self.infos[name] = PluginInfo(name, dist, version, "active", hooks, builtin=builtin,
                                      origin=origin, contract_edition=edition)

    def _failed(self, name: str, dist: str, version: str, exc: BaseException, builtin: bool = False) -> None:
        error = f"{type(exc).__name__}: {exc}"
        trace = "".join(traceback.format_exception(exc))
        self.infos[name] = PluginInfo(name, dist, version, "failed", error=error,
                                      traceback=trace, builtin=builtin)

    def register(self, plugin: Any, name: str, dist: str = "inline", version: str = "0") -> PluginInfo:
        """Register a plugin object in process (tests, notebooks); its records show at once."""
        self._register(name, plugin, dist, version)
        self._cache.clear()
        return self.infos[name]

    def unregister(self, name: str) -> None:
        """Undo :meth:`register` (or remove any loaded plugin) by name."""
        self.pm.unregister(name=name)
        self.infos.pop(name, None)
        self._cache.clear()

    # -- asking ---------------------------------------------------------------------------
    def failures(self) -> list[PluginInfo]:
        return [i for i in self.infos.values() if i.status == "failed"]

    def require(self, name: str) -> PluginInfo:
        """The plugin ``name``, which the user asked for: fatal if it is not active."""
        info = self.infos.get(name)
        if info is None:
            raise PluginError(f"no plugin named '{name}' is installed (see: encompass plugins)")
        if info.status != "active":
            raise PluginError(f"plugin '{name}' ({info.distribution}) is {info.status}: {info.error}")
        return info

    def _collect(self, hook_name: str, record_type: type) -> dict[str, tuple[Any, str]]:
        if hook_name in self._cache:
            return self._cache[hook_name]
        found: dict[str, tuple[Any, str]] = {}
        caller = getattr(self.pm.hook, hook_name)
        for impl in caller.get_hookimpls():  # registration order
            plugin_name = impl.plugin_name
            try:
                records = list(impl.function() or ())
                wrong = [r for r in records if not isinstance(r, record_type)]
                if wrong:
                    raise PluginError(f"returned {type(wrong[0]).__name__} from {hook_name}, "
                                      f"expected {record_type.__name__}")
            except Exception as exc:  # noqa: BLE001 - a plugin failing here loses its own records only
                self._hook_failed(plugin_name, hook_name, exc)
                continue
            for record in records:
                if record.name in found:
                    first = self._describe(found[record.name][1])
                    raise PluginError(
                        f"'{record.name}' is registered twice by {hook_name}: by {first} and by "
                        f"{self._describe(plugin_name)}; uninstall or disable one "
                        f"({ALLOW_ENV}=...)"
                    )
                found[record.name] = (record, plugin_name)
        self._cache[hook_name] = found
        return found

    def _hook_failed(self, plugin_name: str, hook_name: str, exc: BaseException) -> None:
        """Record that a plugin failed in a registration hook: it is listed as failed, the
        other plugins' records stay."""
        info = self.infos.get(plugin_name)
        error = f"failed in {hook_name}: {type(exc).__name__}: {exc}"
        trace = "".join(traceback.format_exception(exc))
        if info is None:
            self.infos[plugin_name] = PluginInfo(plugin_name, "inline", "0", "failed", error=error,
                                                 traceback=trace)
        else:
            self.infos[plugin_name] = attrs.evolve(info, status="failed", error=error, traceback=trace)
        if self.on_hook_failure is not None:
            self.on_hook_failure(self.infos[plugin_name])

    def provider_of(self, record: Any) -> str | None:
        """Which plugin registered ``record`` (for messages)."""
        for found in self._cache.values():
            for candidate, plugin_name in found.values():
                if candidate is record:
                    return plugin_name
        return None

    def _describe(self, plugin_name: str) -> str:
        info = self.infos.get(plugin_name)
        return f"plugin '{plugin_name}' ({info.distribution})" if info else f"plugin '{plugin_name}'"

    def storage_drivers(self) -> dict[str, StorageDriverRecord]:
        return {k: v[0] for k, v in self._collect("encompass_storage_drivers", StorageDriverRecord).items()}

    def platform_drivers(self) -> dict[str, PlatformDriverRecord]:
        return {k: v[0] for k, v in self._collect("encompass_platform_drivers", PlatformDriverRecord).items()}

    def customizers(self) -> dict[str, CustomizerRecord]:
        return {k: v[0] for k, v in self._collect("encompass_customizers", CustomizerRecord).items()}

    def volume_openers(self) -> list[VolumeOpenerRecord]:
        records = [v[0] for v in self._collect("encompass_volume_openers", VolumeOpenerRecord).values()]
        return sorted(records, key=lambda r: (r.priority, r.name))

    def item_presets(self) -> dict[str, ItemPresetRecord]:
        return {k: v[0] for k, v in self._collect("encompass_item_presets", ItemPresetRecord).items()}

    def cli_commands(self) -> dict[str, CliCommandRecord]:
        return {k: v[0] for k, v in self._collect("encompass_cli_commands", CliCommandRecord).items()}

    def provider(self, hook_name: str, name: str) -> str | None:
        """Which plugin registered ``name`` through ``hook_name`` (for messages)."""
        entry = self._cache.get(hook_name, {}).get(name)
        return entry[1] if entry else None

    @property
    def hook(self) -> Any:
        """pluggy's hook relay, to call action hooks: ``host.hook.encompass_image_event(...)``."""
        return self.pm.hook

    def notify(self, event: Any, warn: Callable[[str], None] | None = None) -> None:
        """Call ``encompass_image_event``; a failing observer is reported and ignored."""
        for impl in self.pm.hook.encompass_image_event.get_hookimpls():
            try:
                impl.function(event=event)
            except Exception as exc:  # noqa: BLE001
                if warn:
                    warn(f"plugin '{impl.plugin_name}' failed to observe an event: {exc}")


def _version(dist: str) -> str:
    """The installed version of distribution ``dist``, "0" when it is not installed (one
    look-up: each scans the import path)."""
    import importlib.metadata

    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "0"


def _installed_plugins() -> tuple[plugin_index.IndexedPlugin, ...]:
    """The full look: every entry point of the group, from the installed distributions."""
    import importlib.metadata

    return tuple(_indexed(ep) for ep in importlib.metadata.entry_points(group=GROUP))


def _indexed(entry_point: Any) -> plugin_index.IndexedPlugin:
    """What the plugin index keeps of an entry point found by importlib.metadata."""
    dist = getattr(entry_point, "dist", None)
    if dist is None:
        return plugin_index.IndexedPlugin(entry_point.name, entry_point.value, "unknown", "?")
    metadata = dist.metadata  # parsed on each access (an email parser): once, not twice
    installed_from = provenance.installed_from(dist)
    return plugin_index.IndexedPlugin(entry_point.name, entry_point.value, metadata["Name"] or dist.name,
                                      metadata["Version"],
                                      None if installed_from is None else str(installed_from))
