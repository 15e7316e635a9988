"""The connection to one Redfish service (a BMC, or a Redfish aggregator), through ``sushy``.

Everything ``sushy`` raises is turned here into the core's errors, in one line naming the
platform: a service that does not answer, refused credentials, a missing system. The password
is read from the platform's ``password_env`` or ``password_file`` when the session opens and
handed to ``sushy`` only; it is never part of a message.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from encompass_core.config import secret
from encompass_core.errors import DriverError, NotFound

#: Seconds to wait for the service to accept a connection; a BMC answers fast or not at all.
CONNECT_TIMEOUT = 10
#: A BMC's 5xx answers are retried this many times by sushy, this many seconds apart.
SERVER_SIDE_RETRIES = 2
SERVER_SIDE_RETRY_DELAY = 1


class Bmc:
    """A lazily opened ``sushy.Sushy`` session to the platform's Redfish service."""

    def __init__(self, platform: str, section: Any, config: Any) -> None:
        self.platform = platform
        self.address = section.settings["address"].rstrip("/")
        self.username = section.settings.get("username")
        self.verify = section.settings.get("verify_tls", True)
        self.timeout = section.settings.get("request_timeout", 60)
        self._section = section
        self._config = config
        self._root: Any = None

    @contextlib.contextmanager
    def asking(self, what: str) -> Iterator[None]:
        """Run a request, turning sushy's errors into one line naming the platform."""
        import sushy.exceptions as failures

        try:
            yield
        except failures.ResourceNotFoundError as exc:
            raise NotFound(f"platform '{self.platform}': the Redfish service at {self.address} has "
                           f"no such resource (cannot {what}): {_said(exc)}") from None
        except failures.AccessError:
            raise DriverError(f"platform '{self.platform}': the Redfish service at {self.address} "
                              f"refused the credentials of '{self.username}' (cannot {what}); check "
                              "username and password_env / password_file") from None
        except failures.ConnectionError:
            raise DriverError(f"platform '{self.platform}': no Redfish service answers at "
                              f"{self.address} (cannot {what}); is the BMC reachable?") from None
        except failures.SushyError as exc:
            raise DriverError(f"platform '{self.platform}': the Redfish service at {self.address} "
                              f"failed to {what}: {_said(exc)}") from None

    def root(self) -> Any:
        """The service root (``sushy.Sushy``), opened on first use."""
        if self._root is None:
            import sushy
            import sushy.auth

            password = secret(self._section, "password", self._config)
            # Basic authentication on each request: no session to leak, and BMCs without a
            # SessionService (or with few session slots) work alike.
            auth = sushy.auth.BasicAuth(username=self.username, password=password)
            with self.asking("open a session"):
                self._root = sushy.Sushy(
                    self.address, auth=auth, verify=self.verify,
                    connect_timeout=CONNECT_TIMEOUT, read_timeout=self.timeout,
                    server_side_retries=SERVER_SIDE_RETRIES,
                    server_side_retries_delay=SERVER_SIDE_RETRY_DELAY)
        return self._root

    def systems(self) -> list[Any]:
        """Every ComputerSystem the service manages."""
        with self.asking("list its systems"):
            return list(self.root().get_system_collection().get_members())

    def close(self) -> None:
        """End the session (a session-auth BMC frees a slot)."""
        if self._root is not None:
            with contextlib.suppress(Exception):
                self._root.close()
            self._root = None


def _said(exc: BaseException) -> str:
    """What the service said, on one line."""
    return " ".join(str(exc).split()) or type(exc).__name__
