"""Hook implementations: the ``sysprep`` item type and the ``windows`` / ``windows-xp`` presets."""

from __future__ import annotations

from collections.abc import Iterator

from encompass_core import hookimpl
from encompass_core.lazy import lazy_factory
from encompass_core.records import CustomizerRecord, ItemPresetRecord

from .presets import windows_items, windows_xp_items

#: The driver contract edition this plugin was written for (encompass plugins shows it).
CONTRACT_EDITION = 2


class SysprepPlugin:
    """Windows customization: answer files for sysprep (unattend.xml, sysprep.inf)."""

    @hookimpl
    def encompass_customizers(self) -> Iterator[CustomizerRecord]:
        # The customizer's module is imported when an item of this type is applied or checked:
        # ``customize`` asks every plugin for its types, whichever it applies.
        yield CustomizerRecord(name="sysprep",
                               factory=lazy_factory("encompass_sysprep.customizer", "SysprepCustomizer"),
                               description="one setting of a Windows answer file (unattend.xml, "
                                           "sysprep.inf, SetupComplete.cmd)")

    @hookimpl
    def encompass_item_presets(self) -> Iterator[ItemPresetRecord]:
        yield ItemPresetRecord(name="windows", factory=windows_items,
                               description="Windows Vista and later (unattend.xml): computer name, "
                                           "Administrator password, time zone, domain join, static IP")
        yield ItemPresetRecord(name="windows-xp", factory=windows_xp_items,
                               description="Windows XP / Server 2003 (sysprep.inf): the same keys")
