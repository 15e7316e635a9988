"""``cloud-init``: a NoCloud seed in the image, which cloud-init reads at the next boot.

The value is the user-data (``#cloud-config`` YAML, a script, a MIME multi-part...). The item's
path is the seed directory (usually ``/var/lib/cloud/seed/nocloud``); ``user-data`` and
``meta-data`` are written there. ``meta-data`` holds ``instance-id`` (the clone's name and a
digest of the user-data, so that a changed seed runs again) and ``local-hostname``
(parameter ``hostname``, default the clone's name; ``{clone}`` is replaced). Parameters
``meta_data`` (extra YAML lines for meta-data) and ``network_config`` (written as
``network-config``) are optional. Revert: the three files as in the parent image.
"""

from __future__ import annotations

import hashlib

from ...model import CustomizationItem
from ..access import FileAccess
from ..fsutil import restore, write_file
from ..items import check_params, expand

PARAMS = {"hostname", "meta_data", "network_config"}
FILES = ("user-data", "meta-data", "network-config")


class CloudInitCustomizer:
    """Write a NoCloud seed."""

    needs_value = True

    def validate(self, item: CustomizationItem) -> None:
        check_params(item, PARAMS)

    def apply(self, fs: FileAccess, item: CustomizationItem, value: str, clone_name: str) -> None:
        seed = item.path.rstrip("/") or "/"
        user_data = value if value.endswith("\n") else value + "\n"
        digest = hashlib.sha256(user_data.encode()).hexdigest()[:12]
        hostname = expand(str(item.params.get("hostname", "{clone}")), "", clone_name)
        meta = f"instance-id: {clone_name}-{digest}\nlocal-hostname: {hostname}\n"
        extra = str(item.params.get("meta_data", ""))
        if extra:
            meta += expand(extra, "", clone_name).rstrip("\n") + "\n"
        # user-data may hold passwords: readable by root only.
        write_file(fs, f"{seed}/user-data", user_data.encode(), mode=0o600, uid=0, gid=0)
        write_file(fs, f"{seed}/meta-data", meta.encode(), mode=0o644, uid=0, gid=0)
        network = item.params.get("network_config")
        if network:
            write_file(fs, f"{seed}/network-config", expand(str(network), "", clone_name).encode(),
                       mode=0o644, uid=0, gid=0)

    def revert(self, fs: FileAccess, item: CustomizationItem, parent_fs: FileAccess | None) -> None:
        seed = item.path.rstrip("/") or "/"
        for name in FILES:
            path = f"{seed}/{name}"
            if not restore(fs, parent_fs, path) and fs.exists(path):
                fs.remove(path)
