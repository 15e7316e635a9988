"""Hook implementations of encompass-template: registration only.

Each hook returns records naming a driver and its factory; the driver modules are imported
inside the hooks, so ``encompass plugins`` stays cheap when an SDK is heavy. The hook
reference is ``docs/hooks.md`` of Encompass.
"""

from __future__ import annotations

from collections.abc import Iterator

from encompass_core import hookimpl
from encompass_core.records import (
    CustomizerRecord,  # kind: customizer
    PlatformDriverRecord,  # kind: platform
    StorageDriverRecord,  # kind: storage
    VolumeOpenerRecord,  # kind: opener
)
from encompass_core.settings import Setting  # kind: storage platform

#: The edition of the driver contract this plugin is written for (encompass_core.contracts).
CONTRACT_EDITION = 2

# kind: storage
#: What a ``[pools.NAME]`` table of this driver may hold; the core checks it before building.
STORAGE_SETTINGS = (
    Setting("array", str, required=True, help="the array's address"),
)


@hookimpl
def encompass_storage_drivers() -> Iterator[StorageDriverRecord]:
    from .storage import TemplateStorageDriver

    yield StorageDriverRecord(name="template", factory=TemplateStorageDriver,
                              description="LUNs of template arrays, reached over iSCSI",
                              settings=STORAGE_SETTINGS)
# end kind


# kind: platform
#: What a ``[platforms.NAME]`` table of this driver may hold.
PLATFORM_SETTINGS = (
    Setting("address", str, required=True, help="the management controller's address"),
)


@hookimpl
def encompass_platform_drivers() -> Iterator[PlatformDriverRecord]:
    from .platform import TemplatePlatformDriver

    yield PlatformDriverRecord(name="template", factory=TemplatePlatformDriver,
                               description="physical machines behind template controllers",
                               settings=PLATFORM_SETTINGS)
# end kind


# kind: customizer
@hookimpl
def encompass_customizers() -> Iterator[CustomizerRecord]:
    from .customizer import TemplateCustomizer

    yield CustomizerRecord(name="template", factory=TemplateCustomizer,
                           description="write the value as one line of a file")
# end kind


# kind: opener
@hookimpl
def encompass_volume_openers() -> Iterator[VolumeOpenerRecord]:
    from .opener import TemplateOpener

    yield VolumeOpenerRecord(name="template", factory=TemplateOpener, priority=60,
                             description="file trees packed in tar archives",
                             settings=TemplateOpener.settings)
# end kind
