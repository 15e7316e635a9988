"""The ``sysprep`` item type: one setting of a Windows answer file, from the item's value.

Parameters: ``setting`` (default: the item's key; see :data:`.settings.SETTINGS`),
``architecture`` (``processorArchitecture`` of unattend.xml components: amd64, x86, arm64;
the ``windows`` preset takes it from the master's hardware profile), ``interface`` (the network
interface a static address goes to, default ``Ethernet``), ``format`` (``unattend``,
``sysprep.inf`` or ``setup-complete``; default from the path: ``*.inf`` is sysprep.inf, the
``setup-complete`` setting writes SetupComplete.cmd, anything else unattend.xml).

Items sharing one answer file each set their setting in it: applying one reads the settings of
the file there (written by Encompass), sets its own and writes the whole file again. An empty
value leaves the setting out. Reverting restores the file of the parent image (usually: no
file), so un-customizing leaves no answer file; the core then applies the other items on the
file again (a secret one must be given again). A setting holding a password must be a secret
item: its value is never stored in metadata nor shown.
"""

from __future__ import annotations

from encompass_core.customization.access import FileAccess
from encompass_core.customization.fsutil import restore, write_file
from encompass_core.customization.items import check_params
from encompass_core.errors import InvalidInput
from encompass_core.model import CustomizationItem

from . import sysprepinf, unattend
from .settings import SETTINGS, SETUP_COMPLETE, SYSPREP_INF, UNATTEND, Setting, check_value, lines

PARAMS = {"setting", "architecture", "interface", "format"}
ARCHITECTURES = ("amd64", "x86", "arm64")
NETWORK = ("ip-address", "gateway", "dns")


def setting_of(item: CustomizationItem) -> Setting:
    """The setting an item sets (its ``setting`` parameter, else its key)."""
    name = str(item.params.get("setting", item.key))
    setting = SETTINGS.get(name)
    if setting is None:
        raise InvalidInput(f"item '{item.key}' (sysprep): unknown setting '{name}'; give "
                           f"--param setting=NAME, one of: {', '.join(SETTINGS)}")
    return setting


def format_of(item: CustomizationItem, setting: Setting) -> str:
    """Which file the item writes: unattend.xml, sysprep.inf or SetupComplete.cmd."""
    given = item.params.get("format")
    if given is None:
        if setting.name == SETUP_COMPLETE:
            return SETUP_COMPLETE
        return SYSPREP_INF if item.path.lower().endswith(".inf") else UNATTEND
    if given not in (UNATTEND, SYSPREP_INF, SETUP_COMPLETE):
        raise InvalidInput(f"item '{item.key}' (sysprep): format={given!r}; use unattend, sysprep.inf "
                           "or setup-complete")
    return str(given)


class SysprepCustomizer:
    """Set one setting of a Windows answer file (unattend.xml, sysprep.inf, SetupComplete.cmd)."""

    needs_value = True

    def validate(self, item: CustomizationItem) -> None:
        check_params(item, PARAMS)
        setting = setting_of(item)
        kind = format_of(item, setting)
        if kind not in setting.formats:
            raise InvalidInput(f"item '{item.key}' (sysprep): {setting.name} cannot go into {kind} "
                               f"(it goes into: {', '.join(setting.formats)})")
        if setting.secret and not item.secret:
            raise InvalidInput(f"item '{item.key}' (sysprep): {setting.name} is a password: make the item "
                               "secret (--secret), so its value is never stored nor shown")
        architecture = item.params.get("architecture", "amd64")
        if architecture not in ARCHITECTURES:
            raise InvalidInput(f"item '{item.key}' (sysprep): architecture={architecture!r}; use one of "
                               f"{', '.join(ARCHITECTURES)}")

    def check_value(self, item: CustomizationItem, value: str) -> str:
        """The value as it goes into the file; InvalidInput (never quoting a secret) when it
        does not fit the setting or the file."""
        self.validate(item)
        setting = setting_of(item)
        value = check_value(setting.name, value, item.key)
        if format_of(item, setting) == SYSPREP_INF and '"' in value:
            raise InvalidInput(f"item '{item.key}' (sysprep): sysprep.inf cannot hold a double quote (\") "
                               f"in {setting.name}; choose a value without one")
        return value

    def apply(self, fs: FileAccess, item: CustomizationItem, value: str, clone_name: str) -> None:
        value = self.check_value(item, value)
        setting = setting_of(item)
        kind = format_of(item, setting)
        if kind == SETUP_COMPLETE:
            if value:
                script = "\r\n".join(["@echo off", "rem Made by Encompass (sysprep plugin)", *lines(value)])
                write_file(fs, item.path, (script + "\r\n").encode("utf-8"))
            return
        module = unattend if kind == UNATTEND else sysprepinf
        values = module.read(fs.read(item.path)) if fs.exists(item.path) else {}
        if value:
            values[setting.name] = value
        else:
            values.pop(setting.name, None)
        values[unattend.ARCHITECTURE] = str(item.params.get("architecture", "amd64"))
        if setting.name in NETWORK and item.params.get("interface"):
            values[unattend.INTERFACE] = str(item.params["interface"])
        write_file(fs, item.path, module.render(values))

    def revert(self, fs: FileAccess, item: CustomizationItem, parent_fs: FileAccess | None) -> None:
        if not restore(fs, parent_fs, item.path) and fs.exists(item.path):
            fs.remove(item.path)  # no parent image to ask: the answer file is ours
