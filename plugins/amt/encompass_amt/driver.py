"""The ``amt`` platform driver: PCs with Intel AMT, reached by WS-Management.

The machines are physical: the driver does not create them, it finds them (probing every
address of the platform at once, each with a timeout), powers them on and off, and deploys an
image by giving the PC its boot volume as an iSCSI LUN 0 (the pool maps it to the PC's boot
initiator, ``PREFIX:UUID``), forcing a one-time hard-drive boot through AMT and powering it on.
Every request runs on one asyncio loop the driver keeps in a thread of its own (its connections
to the PCs stay open between calls; ``shutdown`` closes them); the password is read when the
first request needs it, and only into the HTTP client's digest authenticator.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import attrs

from encompass_core import config as encompass_config
from encompass_core.config import Config, Section
from encompass_core.contracts import Attachment, PlatformCapabilities, PlatformDriver
from encompass_core.errors import ConfigError, InvalidInput, NotFound, NotSupported
from encompass_core.model import HostPort, Image, Machine

from . import pc
from .client import AmtClient, AmtError, Unreachable
from .loop import BackgroundLoop
from .settings import Endpoint, endpoints

T = TypeVar("T")
POWER_ACTIONS = ("on", "off", "reset")
#: The contract's boot modes and the one-time AMT boot source each takes.
BOOT_SOURCES = {"san": "hdd", "disk": "hdd", "pxe": "pxe"}
#: Seconds a power change may take to show in the PC's reported state.
SETTLE = 30.0


class AmtPlatformDriver(PlatformDriver):
    """The AMT PCs of one ``[platforms.NAME]`` table (``addresses`` or a ``range``)."""

    capabilities = PlatformCapabilities(kind="physical", attach_kinds=("iscsi",),
                                        boot_modes=("san", "disk", "pxe"), boot_device=("once",))

    def __init__(self, section: Section, config: Config | None = None) -> None:
        self.platform = section.name
        self.where = f"platform '{self.platform}'"
        self._section, self._config = section, config
        settings = section.settings
        self.endpoints, self.probing = endpoints(settings, f"[platforms.{section.name}]")
        self.user = section.setting("user", "admin", str)
        self.timeout = float(section.setting("timeout", 5.0, (int, float)))
        self.concurrency = int(section.setting("concurrency", 64, int))
        self.initiator_prefix = section.setting("initiator_prefix", "iqn.2010-04.org.ipxe", str)
        self.tls = bool(section.setting("tls", False, bool))
        ca_file = section.setting("ca_file", None, str)
        self._ca_file = str(config.resolve_path(ca_file) if config else ca_file) if ca_file else None
        self._verify_tls = bool(section.setting("verify_tls", True, bool))
        self._tls_context: ssl.SSLContext | None = None
        self._authenticators: dict[Endpoint, Any] = {}  # digest state per PC, across requests
        self._password: str | None = None
        self._loop = BackgroundLoop(f"amt-{self.platform}")
        self._client: AmtClient | None = None
        self._names: dict[str, Endpoint] = {}  # machine name -> endpoint, as last discovered
        self.console_format = section.setting("console_log", None, str)

    def __repr__(self) -> str:
        return f"AmtPlatformDriver({self.platform!r}, {len(self.endpoints)} addresses)"

    # -- running requests ----------------------------------------------------------------------
    def _secret(self) -> str:
        if self._password is None:
            password = encompass_config.secret(self._section, "password", self._config)
            if not password:
                raise ConfigError(f"[platforms.{self.platform}] needs the AMT password: "
                                  "password_env = \"VARIABLE\" or password_file = \"path (mode 0600)\"")
            self._password = password
        return self._password

    def _tls(self) -> ssl.SSLContext | None:
        """The SSL context for HTTPS, made once (it loads the CA bundle or the ca_file)."""
        if self.tls and self._tls_context is None:
            try:
                context = ssl.create_default_context(cafile=self._ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(f"[platforms.{self.platform}] ca_file {self._ca_file}: "
                                  f"{getattr(exc, 'strerror', None) or exc}") from None
            if not self._verify_tls:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            self._tls_context = context
        return self._tls_context

    def _run(self, work: Callable[[AmtClient], Awaitable[T]]) -> T:
        """Run ``work`` on the driver's loop with its client (made on first use, kept)."""
        async def main() -> T:
            if self._client is None:
                self._client = AmtClient(self.where, self.user, self._secret(), self.timeout,
                                         self._tls(), self._authenticators)
            return await work(self._client)

        return self._loop.run(main())

    def shutdown(self) -> None:
        """Close the connections to the PCs and stop the driver's loop."""
        client, self._client = self._client, None
        self._loop.close(client.__aexit__(None, None, None) if client is not None else None)

    async def _each(self, client: AmtClient, targets: Iterable[Endpoint],
                    probe: Callable[[AmtClient, Endpoint], Awaitable[T]]) -> list[T | AmtError]:
        """``probe`` every endpoint at once (at most ``concurrency`` in flight); an endpoint's
        error is its result, so one silent PC does not hide the others."""
        gate = asyncio.Semaphore(self.concurrency)

        async def one(endpoint: Endpoint) -> T | AmtError:
            async with gate:
                try:
                    return await probe(client, endpoint)
                except AmtError as exc:
                    return exc

        return await asyncio.gather(*(one(endpoint) for endpoint in targets))

    # -- discovery -----------------------------------------------------------------------------
    def discover(self) -> list[Machine]:
        """Every PC that answers, with its identity and power state. A listed address that
        does not answer is a machine of unknown power (``extra['error']`` says why); the silent
        addresses of a range are skipped. A refused password, or no PC answering at all, is an
        error."""

        async def probe(client: AmtClient, endpoint: Endpoint) -> Machine:
            identity = await pc.identity(client, endpoint)
            power = await pc.power_state(client, endpoint)
            return self._machine(endpoint, identity, power)

        found = self._run(lambda client: self._each(client, self.endpoints, probe))
        return self._collect(found)

    def _collect(self, found: list[Machine | AmtError]) -> list[Machine]:
        errors = [item for item in found if isinstance(item, AmtError)]
        refused = [error for error in errors if not isinstance(error, Unreachable)]
        if refused:
            raise refused[0]
        if errors and len(errors) == len(found):
            if len(found) == 1:
                raise errors[0]
            raise AmtError(f"{self.where}: none of its {len(found)} AMT addresses answers; "
                           f"the first: {errors[0]}")
        machines: list[Machine] = []
        taken: set[str] = set()
        for endpoint, item in zip(self.endpoints, found, strict=True):
            if isinstance(item, AmtError):
                if self.probing:
                    continue
                item = Machine(name=_fallback_name(endpoint), platform=self.platform, kind="physical",
                               power="unknown", addresses=(endpoint.label,),
                               extra={"amt": endpoint.url, "error": str(item)})
            if item.name in taken:  # two PCs with one AMT host name: the address tells them apart
                item = attrs.evolve(item, name=_fallback_name(endpoint))
            taken.add(item.name)
            machines.append(item)
        self._names = {machine.name: endpoint for machine, endpoint in
                       ((m, self._endpoint_of(m)) for m in machines) if endpoint is not None}
        return machines

    def _endpoint_of(self, machine: Machine) -> Endpoint | None:
        for endpoint in self.endpoints:
            if endpoint.label in machine.addresses:
                return endpoint
        return None

    def _machine(self, endpoint: Endpoint, identity: pc.Identity, power: str) -> Machine:
        ports = (HostPort("iscsi", f"{self.initiator_prefix}:{identity.uuid}"),) if identity.uuid else ()
        extra = {"amt": endpoint.url, "manufacturer": identity.manufacturer, "model": identity.model,
                 "serial": identity.serial}
        return Machine(name=identity.hostname or _fallback_name(endpoint), platform=self.platform,
                       kind="physical", uuid=identity.uuid, power=power, macs=identity.macs,
                       host_ports=ports, addresses=(endpoint.label,),
                       extra={key: value for key, value in extra.items() if value})

    def power_states(self) -> dict[str, str]:
        """The power state of every PC, by address (``host:port``), in one round of requests
        (one Get each, all at once): what a monitor polls. A PC that does not answer is
        ``unknown``."""
        found = self._run(lambda client: self._each(client, self.endpoints, pc.power_state))
        refused = [item for item in found if isinstance(item, AmtError) and not isinstance(item, Unreachable)]
        if refused:
            raise refused[0]
        return {endpoint.label: (item if isinstance(item, str) else "unknown")
                for endpoint, item in zip(self.endpoints, found, strict=True)}

    def _locate(self, machine: Machine) -> Endpoint:
        """The endpoint of a machine of this platform, by its name."""
        endpoint = self._names.get(machine.name)
        if endpoint is None:
            self.discover()
            endpoint = self._names.get(machine.name)
        if endpoint is None:
            raise NotFound(f"{self.where} has no AMT PC named '{machine.name}' "
                           "(encompass machine list)")
        return endpoint

    async def _read(self, client: AmtClient, endpoint: Endpoint) -> Machine:
        """The PC as it is now (identity and power)."""
        return self._machine(endpoint, await pc.identity(client, endpoint),
                             await pc.power_state(client, endpoint))

    # -- power ---------------------------------------------------------------------------------
    def power(self, machine: Machine, action: str) -> Machine:
        if action not in POWER_ACTIONS:
            raise InvalidInput(f"unknown power action '{action}': use {', '.join(POWER_ACTIONS)}")
        endpoint = self._locate(machine)

        async def work(client: AmtClient) -> Machine:
            await pc.set_power(client, endpoint, action, SETTLE)
            return await self._read(client, endpoint)

        return self._run(work)

    def set_boot_device(self, machine: Machine, device: str, once: bool) -> Machine:
        """Boot ``device`` (``san`` or ``disk``: the PC's hard drive; ``pxe``) at the next power
        on only: AMT forgets it after that boot."""
        if device not in BOOT_SOURCES:
            raise InvalidInput(f"{self.where}: unknown boot device '{device}' "
                               f"(one of {', '.join(BOOT_SOURCES)})")
        if not once:
            raise NotSupported(f"{self.where}: AMT sets a boot device for the next boot only; "
                               "set the persistent order in the PC's firmware setup")
        return self.boot_once(machine, BOOT_SOURCES[device])

    def boot_once(self, machine: Machine, source: str) -> Machine:
        """Boot ``source`` (``pxe``, ``hdd``, ``cd``, ``ider-cd``, ``ider-floppy``: IDE-R of the
        drive a redirection session offers) at the next power on only."""
        endpoint = self._locate(machine)

        async def work(client: AmtClient) -> Machine:
            await pc.boot_once(client, endpoint, source)
            return await self._read(client, endpoint)

        return self._run(work)

    def console_log(self, machine: Machine) -> Path | None:
        """Where the PC's serial console is captured (``console_log`` with ``{name}``: what a
        serial-over-LAN logger such as amtterm or conserver writes)."""
        if not self.console_format:
            return None
        return Path(self.console_format.format(name=machine.name))

    # -- deploy --------------------------------------------------------------------------------
    def deploy(self, machine: Machine, image: Image, attachments: list[Attachment]) -> Machine:
        """Boot the PC from the image's boot volume, its iSCSI LUN 0: force a one-time
        hard-drive boot (the PC's iSCSI boot firmware logs in as ``PREFIX:UUID``) and power the
        PC on (off first, when it runs)."""
        foreign = sorted({a.kind for a in attachments if a.kind not in self.capabilities.attach_kinds})
        if foreign:
            raise NotSupported(f"{self.where}: AMT PCs boot iSCSI LUNs, not {', '.join(foreign)} "
                               "volumes; clone the image into a pool with export = \"iscsi\" or a SAN")
        boot = [a for a in attachments if a.boot]
        if len(boot) != 1:
            raise InvalidInput(f"{self.where}: deploying '{image.name}' needs exactly one boot "
                               f"volume, got {len(boot)}")
        endpoint = self._locate(machine)

        async def work(client: AmtClient) -> Machine:
            current = await self._read(client, endpoint)
            initiator = boot[0].details.get("initiator")
            ours = [port.address for port in current.host_ports]
            if initiator and initiator not in ours:
                raise AmtError(f"{self.where}: the boot LUN of '{image.name}' is mapped to "
                               f"{initiator}, and PC '{current.name}' boots as {', '.join(ours) or '?'}")
            await pc.set_power(client, endpoint, "off", SETTLE)
            await pc.boot_once(client, endpoint, "hdd")
            await pc.set_power(client, endpoint, "on", SETTLE)
            return await self._read(client, endpoint)

        return self._run(work)

    def undeploy(self, machine: Machine, image: Image) -> Machine:
        """Power the PC off; the pool unmaps its LUN. A PC already off is left alone."""
        endpoint = self._locate(machine)

        async def work(client: AmtClient) -> Machine:
            await pc.set_power(client, endpoint, "off", SETTLE)
            return await self._read(client, endpoint)

        return self._run(work)


def _fallback_name(endpoint: Endpoint) -> str:
    """A name for a PC whose AMT has no host name: ``amt-`` and its address."""
    return "amt-" + endpoint.label.replace("[", "").replace("]", "").replace(":", "-")
