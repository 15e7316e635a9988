"""The libvirt connection of one platform: its URI, a private daemon when ``uri = "private"``.

libvirt-python is imported only when a driver first talks to libvirt, so listing plugins works
without it.
"""

from __future__ import annotations

import contextlib
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from encompass_core.config import Config
from encompass_core.errors import DriverError

DEFAULT_URI = {"kvm": "qemu:///session", "xen": "xen:///system"}
PRIVATE = "private"
_LOCAL_URI = re.compile(r"^(qemu|xen|test)(\+unix)?://(/|$)")

_libvirt_module: Any = None


def libvirt() -> Any:
    """The ``libvirt`` module, imported on first use, with its stderr error printer silenced."""
    global _libvirt_module
    if _libvirt_module is None:
        try:
            import libvirt as module
        except ImportError as exc:
            raise DriverError(
                "libvirt-python is not installed, so the kvm and xen platforms cannot work: "
                "./setup_plugins libvirt (or pip install libvirt-python)"
            ) from exc
        # libvirt prints every error on stderr by default; ours carry the message instead.
        module.registerErrorHandler(lambda _context, _error: None, None)
        _libvirt_module = module
    return _libvirt_module


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


class LibvirtConnection:
    """The connection layer of :class:`~.driver.LibvirtPlatformDriver`: one libvirt URI, or the
    private daemon that serves it, opened on first use and reopened when lost.

    The attributes are set from the platform's settings by ``LibvirtPlatformDriver.__init__``.
    """

    platform: str
    flavour: str
    config: Config
    uri_setting: str
    domain_type_setting: str
    private_dir: Path
    _daemon: Any
    _connection: Any
    _domain_type: str | None

    @property
    def uri(self) -> str:
        """The libvirt URI actually used (a private daemon's socket once it runs)."""
        if self.uri_setting == PRIVATE:
            return self._private_daemon().uri
        return self.uri_setting

    def _private_daemon(self) -> Any:
        if self._daemon is None:
            from .daemon import ensure_private_daemon

            self._daemon = ensure_private_daemon(self.private_dir)
        return self._daemon

    def connection(self) -> Any:
        """An open connection to libvirt, reopened when it was lost."""
        lv = libvirt()
        if self._connection is not None:
            with contextlib.suppress(lv.libvirtError):
                if self._connection.isAlive():
                    return self._connection
            self._connection = None
        uri = self.uri
        try:
            self._connection = lv.open(uri)
        except lv.libvirtError as exc:
            advice = ("start the daemon (libvirtd, or virtqemud/virtxend), check the uri setting "
                      f"of platform '{self.platform}' in {self.config.path}")
            if self.flavour == "kvm":
                advice += ", or set uri = \"private\" to let Encompass run a daemon of its own"
            raise DriverError(f"cannot reach libvirt at {uri} (platform '{self.platform}'): "
                              f"{_one_line(exc.get_error_message())}; {advice}") from None
        return self._connection

    def close(self) -> None:
        """Close the connection (a private daemon keeps running: see :meth:`stop_private_daemon`)."""
        if self._connection is not None:
            with contextlib.suppress(Exception):
                self._connection.close()
            self._connection = None

    def stop_private_daemon(self) -> None:
        """Stop the private daemon of ``uri = "private"`` and the guests it runs (``encompass demo``)."""
        self.close()
        if self.uri_setting != PRIVATE:
            return
        if self._daemon is None:
            from .daemon import attach_private_daemon

            self._daemon = attach_private_daemon(self.private_dir)
        if self._daemon is not None:
            self._daemon.stop()
            self._daemon = None

    def shutdown(self) -> None:
        """What the core calls when it is done with the platform for good (``encompass demo``):
        stop the private daemon this platform runs, if any."""
        self.stop_private_daemon()

    def domain_type(self) -> str:
        """``xen`` for Xen; for KVM ``kvm`` when libvirt offers it for x86_64 guests, else ``qemu``."""
        if self.flavour == "xen":
            return "xen"
        if self.domain_type_setting != "auto":
            return self.domain_type_setting
        if self._domain_type is None:
            capabilities = ET.fromstring(self.connection().getCapabilities())
            types = {d.get("type") for d in capabilities.findall("guest/arch/domain")}
            self._domain_type = "kvm" if "kvm" in types else "qemu"
        return self._domain_type

    def _is_local(self) -> bool:
        return self.uri_setting == PRIVATE or bool(_LOCAL_URI.match(self.uri_setting))

    def _error(self, what: str, exc: Any, advice: str = "") -> DriverError:
        return DriverError(f"cannot {what} on platform '{self.platform}' ({self.uri}): libvirt says: "
                           f"{_one_line(exc.get_error_message())}{advice}")
