"""One logged-in session with a vCenter or ESX host, and the errors users read from it.

pyvmomi is imported on first use, so ``encompass plugins`` works without it. Every call to the
server goes through :meth:`Session.call`, which turns what can go wrong (a refused login, a
certificate that does not verify, a server that went away, a vSphere fault) into one line
naming the pool or platform. The password is read when the session logs in and kept nowhere.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
from collections.abc import Callable
from http.cookies import SimpleCookie
from typing import Any, TypeVar

from encompass_core.config import Config, Section, secret
from encompass_core.errors import ConfigError, DriverError, EncompassError, NotFound

T = TypeVar("T")

_modules: dict[str, Any] = {}


def pyvmomi() -> tuple[Any, Any]:
    """``(vim, vmodl)`` from pyVmomi, imported on first use."""
    if not _modules:
        try:
            from pyVmomi import vim, vmodl
        except ImportError as exc:
            raise DriverError("pyvmomi is not installed, so esx pools and platforms cannot work: "
                              "./setup_plugins esx (or pip install pyvmomi)") from exc
        _modules.update(vim=vim, vmodl=vmodl)
    return _modules["vim"], _modules["vmodl"]


def one_line(text: object) -> str:
    return " ".join(str(text).split())


def fault_message(fault: Any) -> str:
    """The message a vSphere fault carries (its ``msg`` or first localized message), else its
    name and the file or property it is about (vcsim often sends only its Go type name)."""
    message = getattr(fault, "msg", None) or ""
    if not message:
        for item in getattr(fault, "faultMessage", None) or ():
            message = getattr(item, "message", "") or ""
            if message:
                break
    message = one_line(message)
    if message and not message.startswith("*types."):
        return message
    name = type(fault).__name__.rsplit(".", 1)[-1]
    about = next((getattr(fault, field, None) for field in ("file", "name", "invalidProperty")
                  if getattr(fault, field, None)), None)
    return f"{name} ({about})" if about else name


class Session:
    """A logged-in session for the pool or platform ``owner`` (``"platform 'vc'"``)."""

    def __init__(self, section: Section, config: Config, owner: str) -> None:
        self.section = section
        self.config = config
        self.owner = owner
        settings = section.settings
        self.host: str = settings.get("host", "")
        self.port: int = settings.get("port", 443)
        self.user: str = settings.get("user", "")
        self.verify_tls: bool = settings.get("verify_tls", True)
        ca_file = settings.get("ca_file")
        self.ca_file = str(config.resolve_path(ca_file)) if ca_file else None
        self.timeout: int = settings.get("timeout", 60)
        self.task_timeout: int = settings.get("task_timeout", 1800)
        self.datacenter_name: str | None = settings.get("datacenter")
        self.round_trips = 0
        self._si: Any = None
        self._content: Any = None

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    # -- the connection ------------------------------------------------------------------------
    def ssl_context(self) -> ssl.SSLContext:
        """Verify the certificate (against ``ca_file`` when given) unless the platform opts
        out with ``verify_tls = false``."""
        if not self.verify_tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        try:
            return ssl.create_default_context(cafile=self.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"{self.owner}: cannot read ca_file {self.ca_file}: "
                              f"{getattr(exc, 'strerror', None) or exc}") from exc

    @property
    def service(self) -> Any:
        """The server's ServiceInstance, logged in on first use."""
        if self._si is None:
            self._si = self._login()
        return self._si

    @property
    def content(self) -> Any:
        """The ServiceContent, read once per login (pyvmomi's ``si.content`` is a round trip
        each time)."""
        if self._content is None or self._si is None:
            si = self.service
            self._content = self.call("read the service content", si.RetrieveContent)
        return self._content

    def _login(self) -> Any:
        vim, _ = pyvmomi()
        from pyVim.connect import SmartConnect

        password = secret(self.section, "password", self.config)
        if password is None:
            raise ConfigError(f"{self.owner}: needs its password: password_env = \"VARIABLE\" or "
                              "password_file = \"path (mode 0600)\"")
        try:
            si = SmartConnect(host=self.host, port=self.port, user=self.user, pwd=password,
                              sslContext=self.ssl_context(), httpConnectionTimeout=self.timeout)
        except vim.fault.InvalidLogin:
            raise DriverError(f"{self.owner}: {self.where} refused the login of user '{self.user}' "
                              "(wrong user or password); check the user and the password_env or "
                              "password_file it is read from") from None
        except Exception as exc:  # noqa: BLE001 - every failure becomes one line
            raise self._translate(exc, "log in") from None
        self._count(si)
        return si

    def _count(self, si: Any) -> None:
        """Count SOAP round trips (the inventory's proof of one round trip, the benchmark's
        measure) by wrapping the stub's one entry point."""
        stub = si._stub
        invoke = stub.InvokeMethod

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.round_trips += 1
            return invoke(*args, **kwargs)

        stub.InvokeMethod = counted

    def close(self) -> None:
        """Log out (quietly: the server may be gone already)."""
        si, content, self._si, self._content = self._si, self._content, None, None
        if si is not None and content is not None:
            with contextlib.suppress(Exception):
                content.sessionManager.Logout()

    def session_cookie(self) -> str:
        """The ``vmware_soap_session`` cookie, for the datastore's HTTP file access."""
        stub = self.service._stub
        cookie = SimpleCookie(stub.cookie).get("vmware_soap_session")
        if cookie is None:
            raise DriverError(f"{self.owner}: {self.where} gave no session cookie")
        return f"vmware_soap_session={cookie.value}"

    # -- calls ---------------------------------------------------------------------------------
    def call(self, action: str, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one request (``function(*args)``); a failure is one line saying what failed."""
        self.service  # noqa: B018 - log in first, with the login's own messages
        try:
            return function(*args, **kwargs)
        except EncompassError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure becomes one line
            raise self._translate(exc, action) from None

    def _translate(self, exc: BaseException, action: str) -> EncompassError:
        vim, vmodl = pyvmomi()
        if isinstance(exc, ssl.SSLCertVerificationError) or (
                isinstance(exc, ssl.SSLError) and "CERTIFICATE_VERIFY_FAILED" in str(exc)):
            why = getattr(exc, "verify_message", "") or "it does not verify"
            return DriverError(
                f"{self.owner}: the certificate of {self.where} is not trusted ({why}); give its CA "
                "in ca_file, or set verify_tls = false for this platform or pool if it is a lab "
                "server")
        if isinstance(exc, vim.fault.NotAuthenticated | vim.fault.InvalidLogin):
            self._si = None
            return DriverError(f"{self.owner}: {self.where} no longer accepts the session "
                               f"({fault_message(exc)}) while trying to {action}; try again")
        if isinstance(exc, vmodl.fault.ManagedObjectNotFound):
            return NotFound(f"{self.owner}: cannot {action}: it no longer exists on {self.where}")
        if isinstance(exc, vmodl.MethodFault):
            return DriverError(f"{self.owner}: cannot {action}: {fault_message(exc)}")
        if isinstance(exc, ConnectionRefusedError):
            return DriverError(f"{self.owner}: cannot {action}: nothing answers at {self.where} "
                               "(connection refused); is the vCenter or ESX host up?")
        if isinstance(exc, socket.timeout | TimeoutError):
            return DriverError(f"{self.owner}: cannot {action}: {self.where} did not answer within "
                               f"{self.timeout} s (the timeout setting)")
        if isinstance(exc, OSError | http.client.HTTPException):
            self._si = None  # the connection is gone; the next call logs in again
            text = one_line(getattr(exc, "strerror", None) or exc) or type(exc).__name__
            return DriverError(f"{self.owner}: cannot {action}: the connection to {self.where} "
                               f"failed ({text})")
        return DriverError(f"{self.owner}: cannot {action}: {type(exc).__name__}: {one_line(exc)}")
