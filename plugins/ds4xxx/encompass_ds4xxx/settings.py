"""The settings of a ``[pools.NAME] driver = "ds4xxx"`` table."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from encompass_core.settings import Setting

SETTINGS = (
    Setting("controllers", list, required=True,
            help="the management addresses of the subsystem's controllers (A and B)"),
    Setting("array", str, required=True, help="the array (its number) where the pool's logical drives go"),
    Setting("utility_initiator", str, required=True,
            help="this utility server's iSCSI initiator name (iqn...), mapped LUNs to customize them"),
    Setting("password", secret=True, help="the subsystem's password, if it has one"),
    Setting("smcli", str, "SMcli", "the SMcli program (a path, or a name on PATH)"),
    Setting("utility_host", str, "encompass-utility",
            help="the utility server's host on the subsystem (made if missing)"),
    Setting("portal", str, help="the iSCSI portal ADDRESS:PORT (default: as the subsystem's profile says)"),
    Setting("lun_offset", int, 0, "added to SMcli's LUN numbers in iSCSI addresses (1 for the "
            "tgt-based simulator, whose LUN 0 is tgt's own)", minimum=0),
    Setting("initiator_prefix", str, "iqn.2026-12.org.encompass",
            "the start of the initiator names given to virtual machines that declare none"),
    Setting("host_type", str, "Linux", "the host type given to hosts the pool makes"),
    Setting("repository_percent", int, 20, "a FlashCopy repository's size, in percent of its base",
            minimum=1),
    Setting("copy_priority", str, "highest", "the VolumeCopy priority",
            choices=("lowest", "low", "medium", "high", "highest")),
    Setting("poll_interval", float, 2.0, "seconds between polls of a VolumeCopy's progress", minimum=0.05),
    Setting("timeout", float, 120.0, "seconds one SMcli call may take", minimum=1),
    Setting("copy_timeout", int, 3600, "seconds a VolumeCopy or a copy onto a LUN may take", minimum=1),
    Setting("concurrency", int, 2, "clones made in this pool at once, at the most", minimum=1),
)

_DEFAULTS = {setting.name: setting.default for setting in SETTINGS}


def value(settings: Mapping[str, Any], name: str) -> Any:
    """A setting of the (checked) table, or its declared default."""
    return settings.get(name, _DEFAULTS[name])
