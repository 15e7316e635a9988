"""The lab's Intel AMT PCs: a WS-Management responder speaking the SOAP envelopes, actions and
digest authentication the Intel AMT SDK documents, one endpoint per PC on 127.0.0.1.

No AMT simulator exists (Intel ships none; MeshCommander and the Open AMT toolkit need real
firmware), so this one answers what Encompass's ``amt`` plugin and other WS-Man clients ask:
power state (``CIM_AssociatedPowerManagementService``), power changes
(``CIM_PowerManagementService.RequestPowerStateChange``), the one-time boot configuration
(``AMT_BootSettingData`` Get/Put, ``CIM_BootService.SetBootConfigRole``,
``CIM_BootConfigSetting.ChangeBootOrder``), identity (``AMT_GeneralSettings``,
``CIM_ComputerSystemPackage``, ``CIM_Chassis``, ``AMT_EthernetPortSettings`` by Enumerate/Pull).
Anything else is the SOAP fault AMT sends.

Behind each PC is a :class:`PcBackend`: by default :class:`PowerOnly` (a power state and the
boot sources it was started with), or a lab machine, a QEMU guest that boots what the one-time
boot source says. The core never imports the ``amt`` plugin: this module speaks the protocol
from the SDK's text, not from the client's code.

Use it as a context manager (``with AmtLab([AmtPc("pc1")], "admin", password) as lab:``) in
tests and demos, or as a process (``python -m encompass_core.testing.amt_responder --count 100``,
password from ``$AMT_LAB_PASSWORD``), which prints the endpoints as JSON and serves until stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import signal
import ssl
import sys
import threading
import uuid as uuidlib
from collections.abc import Callable, Sequence
from typing import Any, Protocol
from xml.etree import ElementTree
from xml.sax.saxutils import escape

import attrs

from .wsman_http import DigestGate, Endpoint

SOAP = "http://www.w3.org/2003/05/soap-envelope"
ADDRESSING = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
WSMAN = "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"
TRANSFER = "http://schemas.xmlsoap.org/ws/2004/09/transfer"
ENUMERATION = "http://schemas.xmlsoap.org/ws/2004/09/enumeration"
CIM = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/"
AMT = "http://intel.com/wbem/wscim/1/amt-schema/1/"
ANONYMOUS = f"{ADDRESSING}/role/anonymous"
SOAP_TYPE = "application/soap+xml;charset=UTF-8"

#: The one-time boot sources ``ChangeBootOrder`` may name, and what the PC then boots.
FORCED_SOURCES = {"Intel(r) AMT: Force PXE Boot": "pxe",
                  "Intel(r) AMT: Force Hard-drive Boot": "hdd",
                  "Intel(r) AMT: Force CD/DVD Boot": "cd"}
BOOT_CONFIG_ID = "Intel(r) AMT: Boot Configuration 0"
BOOT_SETTINGS_ID = "Intel(r) AMT:BootSettingData 0"
#: RequestPowerStateChange: on, power cycle, off (hard), master bus reset.
ON, CYCLE, OFF, RESET = 2, 5, 8, 10
#: What the PC reports: on (S0) or soft off (S5).
REPORTED_ON, REPORTED_OFF = 2, 8

FAULTS = {  # subcode: (SOAP code, HTTP status, reason), as AMT words them
    "wsman:AccessDenied": ("s:Sender", 400, "The sender was not authorized to access the resource."),
    "wsa:ActionNotSupported": ("s:Sender", 400, "The action is not supported by the service."),
    "wsa:DestinationUnreachable": ("s:Sender", 400, "No route can be determined to reach the "
                                   "destination role defined by the WS-Addressing To."),
    "wsman:InvalidSelectors": ("s:Sender", 400, "The Selectors for the resource were not valid."),
    "wsman:InvalidRepresentation": ("s:Sender", 400, "The XML content was invalid."),
    "wsen:InvalidEnumerationContext": ("s:Receiver", 400, "The supplied enumeration context is "
                                       "invalid."),
    "wsman:SchemaValidationError": ("s:Sender", 400, "The supplied SOAP violates the "
                                    "corresponding XML Schema definition."),
}


class PcBackend(Protocol):
    """What stands behind a PC: powering it on boots ``boot`` (``hdd``, ``pxe``, ``cd``,
    ``ider-cd``, ``ider-floppy``, or ``default``: its firmware's own boot order)."""

    def power_on(self, boot: str) -> None: ...
    def power_off(self) -> None: ...
    def is_on(self) -> bool: ...


class PowerOnly:
    """A PC that is only a power state; ``boots`` records what each power on booted."""

    blocking = False  # its calls return at once: no worker thread needed

    def __init__(self, on: bool = False) -> None:
        self.on = on
        self.boots: list[str] = []

    def power_on(self, boot: str) -> None:
        self.on = True
        self.boots.append(boot)

    def power_off(self) -> None:
        self.on = False

    def is_on(self) -> bool:
        return self.on


class LabPc:
    """A lab machine (a QEMU guest, :class:`~encompass_core.testing.lab.LabMachine`) behind an
    AMT PC: a one-time boot source replaces its firmware's boot order for that power on only
    (hard drive: its SAN LUN 0, else its disk; PXE: the network; CD and IDE-R: the CD drive,
    where the lab inserts nothing), then the order it had is back."""

    ONE_TIME = {"hdd": ("san", "disk"), "pxe": ("network",), "cd": ("cd",), "ider-cd": ("cd",),
                "ider-floppy": ("none",)}
    blocking = True  # starting QEMU takes a while: the responder calls it from a worker thread

    def __init__(self, machine: Any) -> None:
        self.machine = machine

    def power_on(self, boot: str) -> None:
        order = self.ONE_TIME.get(boot)
        if order is None:
            self.machine.power_on()
            return
        persistent = self.machine.settings.boot_order
        self.machine.set_boot_order(order)
        try:
            self.machine.power_on()
        finally:
            self.machine.set_boot_order(persistent)

    def power_off(self) -> None:
        self.machine.power_off()

    def is_on(self) -> bool:
        return self.machine.power_state() == "on"


def add_lab_pc(lab: Any, name: str, *, san_portal: str | None = None,
               boot_order: Sequence[str] = ("network",), initiator_prefix: str = "iqn.2010-04.org.ipxe",
               **settings: Any) -> AmtPc:
    """A lab machine ``name`` made an AMT PC: its iSCSI boot initiator is ``PREFIX:UUID``
    (iPXE's default, which the ``amt`` plugin reports as the PC's host port), its firmware's
    own order ``boot_order`` (the network first: without a one-time AMT boot source it boots
    nothing), its SAN the portal at ``san_portal``."""
    from .lab import identity_for

    base = identity_for(name, seed="encompass-amt-lab")
    identity = attrs.evolve(base, initiator=f"{initiator_prefix}:{base.uuid}", manufacturer="QEMU",
                            product="Standard PC (AMT lab)")
    machine = lab.add(name, boot_order=boot_order, san_portal=san_portal, identity=identity, **settings)
    identity = machine.identity
    return AmtPc(name, uuid=identity.uuid, macs=(identity.mac,), serial=identity.serial,
                 backend=LabPc(machine))


@attrs.define
class AmtPc:
    """One AMT PC: its identity, its one-time boot configuration, what stands behind it.

    ``denied``: methods or classes (``RequestPowerStateChange``, ``AMT_BootSettingData``) this
    PC's user may not use (an AccessDenied fault); ``latency``: seconds each answer takes, as a
    Management Engine's firmware takes tens of milliseconds.
    """

    hostname: str
    uuid: str = attrs.field(factory=lambda: str(uuidlib.uuid4()))
    macs: tuple[str, ...] = ()
    backend: Any = attrs.field(factory=PowerOnly)
    serial: str = ""
    denied: set[str] = attrs.field(factory=set)
    latency: float = 0.0
    boot_settings: dict[str, str] = attrs.field(factory=lambda: {
        "BIOSPause": "false", "BIOSSetup": "false", "BootMediaIndex": "0",
        "ConfigurationDataReset": "false", "ElementName": "Intel(r) AMT Boot Configuration Settings",
        "FirmwareVerbosity": "0", "ForcedProgressEvents": "false", "IDERBootDevice": "0",
        "InstanceID": BOOT_SETTINGS_ID, "LockKeyboard": "false", "LockPowerButton": "false",
        "LockResetButton": "false", "LockSleepButton": "false", "OwningEntity": "Intel(r) AMT",
        "ReflashBIOS": "false", "SecureErase": "false", "UseIDER": "false", "UseSOL": "false",
        "UseSafeMode": "false", "UserPasswordBypass": "false"})
    boot_role: bool = False
    boot_source: str | None = None

    def __attrs_post_init__(self) -> None:
        if not self.macs:
            self.macs = ("52:54:00:" + ":".join(self.uuid.replace("-", "")[i:i + 2] for i in (0, 2, 4)),)
        self.serial = self.serial or self.uuid.replace("-", "")[:10].upper()

    def next_boot(self) -> str:
        """What the next power on boots, forgetting the one-time settings (AMT clears them)."""
        boot = "default"
        if self.boot_role:
            if self.boot_settings.get("UseIDER") == "true":
                boot = "ider-cd" if self.boot_settings.get("IDERBootDevice") == "1" else "ider-floppy"
            elif self.boot_source:
                boot = FORCED_SOURCES[self.boot_source]
        self.boot_role, self.boot_source = False, None
        self.boot_settings["UseIDER"] = "false"
        return boot


# -- envelopes -----------------------------------------------------------------------------------
def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _instance(resource: str, values: dict[str, Any]) -> str:
    name = resource.rsplit("/", 1)[-1]
    inner = ""
    for key, value in values.items():
        for item in value if isinstance(value, list | tuple) else [value]:
            text = item if isinstance(item, _Raw) else escape(str(item))
            inner += f"<h:{key}>{text}</h:{key}>"
    return f'<h:{name} xmlns:h="{resource}">{inner}</h:{name}>'


class _Raw(str):
    """XML put in an instance as it is (an endpoint reference)."""


def _reference(resource: str, selectors: dict[str, str]) -> _Raw:
    inner = "".join(f'<w:Selector Name="{k}">{escape(v)}</w:Selector>' for k, v in selectors.items())
    return _Raw(f"<a:Address>{ANONYMOUS}</a:Address><a:ReferenceParameters><w:ResourceURI>{resource}"
                f"</w:ResourceURI><w:SelectorSet>{inner}</w:SelectorSet></a:ReferenceParameters>")


def _envelope(action: str, relates_to: str, body: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<s:Envelope xmlns:s="{SOAP}" xmlns:a="{ADDRESSING}" xmlns:w="{WSMAN}" '
        f'xmlns:e="{ENUMERATION}" xmlns:t="{TRANSFER}">'
        f"<s:Header><a:To>{ANONYMOUS}</a:To><a:RelatesTo>{escape(relates_to)}</a:RelatesTo>"
        f'<a:Action s:mustUnderstand="true">{escape(action)}</a:Action>'
        f"<a:MessageID>uuid:{uuidlib.uuid4()}</a:MessageID></s:Header>"
        f"<s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


class SoapFault(Exception):
    def __init__(self, subcode: str, detail: str = "") -> None:
        super().__init__(subcode)
        self.subcode = subcode
        self.detail = detail


def _fault(subcode: str, relates_to: str, detail: str = "") -> tuple[int, str, bytes]:
    code, status, reason = FAULTS[subcode]
    text = f"{reason} {detail}".strip()
    prefixed = subcode.replace("wsa:", "a:").replace("wsman:", "w:").replace("wsen:", "e:")
    body = (f"<s:Fault><s:Code><s:Value>{code}</s:Value><s:Subcode><s:Value>{prefixed}</s:Value>"
            f'</s:Subcode></s:Code><s:Reason><s:Text xml:lang="en-US">{escape(text)}</s:Text>'
            "</s:Reason><s:Detail/></s:Fault>")
    return status, SOAP_TYPE, _envelope(f"{ADDRESSING}/fault", relates_to, body)


@attrs.frozen
class Request:
    action: str
    resource: str
    message_id: str
    selectors: dict[str, str]
    body: ElementTree.Element

    def find(self, name: str) -> ElementTree.Element | None:
        """The first element of the body with this local name."""
        return next((element for element in self.body.iter() if _local(element.tag) == name), None)

    def text(self, name: str) -> str | None:
        found = self.find(name)
        return None if found is None else (found.text or "").strip()


def _request(data: bytes) -> Request:
    try:
        root = ElementTree.fromstring(data)
    except ElementTree.ParseError:
        raise SoapFault("wsman:SchemaValidationError", "The request is not XML.") from None
    header, body = root.find(f"{{{SOAP}}}Header"), root.find(f"{{{SOAP}}}Body")
    if root.tag != f"{{{SOAP}}}Envelope" or header is None or body is None:
        raise SoapFault("wsman:SchemaValidationError", "A SOAP 1.2 envelope is expected.")

    def header_text(namespace: str, name: str) -> str:
        found = header.find(f"{{{namespace}}}{name}")
        return "" if found is None else (found.text or "").strip()

    selectors = {item.get("Name", ""): (item.text or "").strip()
                 for item in header.iter(f"{{{WSMAN}}}Selector")}
    action, resource = header_text(ADDRESSING, "Action"), header_text(WSMAN, "ResourceURI")
    if not action or not resource:
        raise SoapFault("wsman:SchemaValidationError", "Action and ResourceURI are required.")
    return Request(action, resource, header_text(ADDRESSING, "MessageID"), selectors, body)


# -- the PC's classes ----------------------------------------------------------------------------
class PcService:
    """Answers one PC's WS-Man requests (called on the responder's event loop)."""

    def __init__(self, pc: AmtPc, run_blocking: Callable[..., Any]) -> None:
        self.pc = pc
        self._blocking = run_blocking
        self._enumerations: dict[str, list[str]] = {}

    async def _run(self, call: Callable[..., Any], *args: Any) -> Any:
        """Call the backend; a slow one (starting QEMU) from a worker, leaving the loop free."""
        if getattr(self.pc.backend, "blocking", True):
            return await self._blocking(call, *args)
        return call(*args)

    async def __call__(self, data: bytes) -> tuple[int, str, bytes]:
        if self.pc.latency:
            await asyncio.sleep(self.pc.latency)
        message_id = ""
        try:
            request = _request(data)
            message_id = request.message_id
            name = request.resource.rsplit("/", 1)[-1]
            method = request.action.rsplit("/", 1)[-1]
            if name in self.pc.denied or method in self.pc.denied:
                raise SoapFault("wsman:AccessDenied")
            action, body = await self._dispatch(request, name, method)
            return 200, SOAP_TYPE, _envelope(action, message_id, body)
        except SoapFault as fault:
            return _fault(fault.subcode, message_id, fault.detail)

    async def _dispatch(self, request: Request, name: str, method: str) -> tuple[str, str]:
        known = {"CIM_AssociatedPowerManagementService", "CIM_PowerManagementService",
                 "CIM_ComputerSystemPackage", "CIM_Chassis", "AMT_EthernetPortSettings",
                 "AMT_GeneralSettings", "AMT_BootSettingData", "CIM_BootService",
                 "CIM_BootConfigSetting"}
        if name not in known:
            raise SoapFault("wsa:DestinationUnreachable")
        if request.action == f"{TRANSFER}/Get":
            return f"{TRANSFER}/GetResponse", _instance(request.resource, await self._get(request, name))
        if request.action == f"{TRANSFER}/Put" and name == "AMT_BootSettingData":
            self._check_selector(request, "InstanceID", BOOT_SETTINGS_ID)
            self._put_boot_settings(request)
            return f"{TRANSFER}/PutResponse", _instance(request.resource, self.pc.boot_settings)
        if request.action == f"{ENUMERATION}/Enumerate":
            context = str(uuidlib.uuid4())
            self._enumerations[context] = self._items(request.resource, name)
            return (f"{ENUMERATION}/EnumerateResponse",
                    f"<e:EnumerateResponse><e:EnumerationContext>{context}</e:EnumerationContext>"
                    "</e:EnumerateResponse>")
        if request.action == f"{ENUMERATION}/Pull":
            items = self._enumerations.pop(request.text("EnumerationContext") or "", None)
            if items is None:
                raise SoapFault("wsen:InvalidEnumerationContext")
            return (f"{ENUMERATION}/PullResponse",
                    f"<e:PullResponse><e:Items>{''.join(items)}</e:Items><e:EndOfSequence/>"
                    "</e:PullResponse>")
        if request.action == f"{request.resource}/{method}":
            value = await self._method(request, name, method)
            return (f"{request.resource}/{method}Response",
                    f'<g:{method}_OUTPUT xmlns:g="{request.resource}"><g:ReturnValue>{value}'
                    f"</g:ReturnValue></g:{method}_OUTPUT>")
        raise SoapFault("wsa:ActionNotSupported")

    @staticmethod
    def _check_selector(request: Request, key: str, value: str) -> None:
        if request.selectors.get(key) != value:
            raise SoapFault("wsman:InvalidSelectors")

    async def _get(self, request: Request, name: str) -> dict[str, Any]:
        pc = self.pc
        if name == "CIM_AssociatedPowerManagementService":
            on = await self._run(pc.backend.is_on)
            return {"AvailableRequestedPowerStates": [ON, CYCLE, OFF, RESET],
                    "PowerState": REPORTED_ON if on else REPORTED_OFF,
                    "ServiceProvided": _reference(CIM + "CIM_PowerManagementService",
                                                  {"Name": "Intel(r) AMT Power Management Service"}),
                    "UserOfService": _reference(CIM + "CIM_ComputerSystem", {"Name": "ManagedSystem"})}
        if name == "AMT_GeneralSettings":
            return {"ElementName": "Intel(r) AMT: General Settings", "HostName": pc.hostname,
                    "DomainName": "lab.encompass", "InstanceID": "Intel(r) AMT: General Settings",
                    "NetworkInterfaceEnabled": "true"}
        if name == "AMT_BootSettingData":
            self._check_selector(request, "InstanceID", BOOT_SETTINGS_ID)
            return dict(pc.boot_settings)
        raise SoapFault("wsa:ActionNotSupported")

    def _items(self, resource: str, name: str) -> list[str]:
        pc = self.pc
        if name == "CIM_ComputerSystemPackage":
            # SMBIOS byte order: the first three fields little-endian, as AMT reports it.
            guid = uuidlib.UUID(pc.uuid).bytes_le.hex().upper()
            return [_instance(resource, {"PlatformGUID": guid,
                                         "Antecedent": _reference(CIM + "CIM_Chassis", {"Tag": pc.serial}),
                                         "Dependent": _reference(CIM + "CIM_ComputerSystem",
                                                                 {"Name": "ManagedSystem"})})]
        if name == "CIM_Chassis":
            return [_instance(resource, {"CreationClassName": "CIM_Chassis", "ChassisPackageType": 3,
                                         "Manufacturer": "Encompass Lab", "Model": "QEMU PC (AMT)",
                                         "SerialNumber": pc.serial, "Tag": pc.serial,
                                         "PackageType": 3})]
        if name == "AMT_EthernetPortSettings":
            return [_instance(resource, {"ElementName": "Intel(r) AMT Ethernet Port Settings",
                                         "InstanceID": f"Intel(r) AMT Ethernet Port Settings {index}",
                                         "MACAddress": mac.replace(":", "-").lower(),
                                         "LinkIsUp": "true", "DHCPEnabled": "true"})
                    for index, mac in enumerate(pc.macs)]
        raise SoapFault("wsa:ActionNotSupported")

    def _put_boot_settings(self, request: Request) -> None:
        given = request.find("AMT_BootSettingData")
        if given is None:
            raise SoapFault("wsman:InvalidRepresentation", "An AMT_BootSettingData is expected.")
        values = {_local(child.tag): (child.text or "").strip() for child in given}
        for key, value in values.items():
            if key not in self.pc.boot_settings:
                raise SoapFault("wsman:InvalidRepresentation", f"Unknown property {key}.")
            if self.pc.boot_settings[key] in ("true", "false") and value not in ("true", "false"):
                raise SoapFault("wsman:InvalidRepresentation", f"{key} is a boolean.")
        if values.get("IDERBootDevice", "0") not in ("0", "1"):
            raise SoapFault("wsman:InvalidRepresentation", "IDERBootDevice is 0 or 1.")
        self.pc.boot_settings.update(values)

    async def _method(self, request: Request, name: str, method: str) -> int:
        pc = self.pc
        if (name, method) == ("CIM_PowerManagementService", "RequestPowerStateChange"):
            state = request.text("PowerState") or ""
            return await self._power(int(state) if state.isdigit() else -1)
        if (name, method) == ("CIM_BootService", "SetBootConfigRole"):
            if request.text("Role") not in ("1", "32768"):
                return 5  # invalid parameter
            pc.boot_role = request.text("Role") == "1"
            return 0
        if (name, method) == ("CIM_BootConfigSetting", "ChangeBootOrder"):
            self._check_selector(request, "InstanceID", BOOT_CONFIG_ID)
            source = request.find("Source")
            if source is None:
                pc.boot_source = None  # no forced device: IDE-R or the firmware's order
                return 0
            chosen = next((item.text or "" for item in source.iter(f"{{{WSMAN}}}Selector")
                           if item.get("Name") == "InstanceID"), "")
            if chosen.strip() not in FORCED_SOURCES:
                return 5
            pc.boot_source = chosen.strip()
            return 0
        raise SoapFault("wsa:ActionNotSupported")

    async def _power(self, state: int) -> int:
        backend = self.pc.backend
        on = await self._run(backend.is_on)
        if state == ON:
            if not on:
                await self._run(backend.power_on, self.pc.next_boot())
            return 0
        if state == OFF:
            if on:
                await self._run(backend.power_off)
            return 0
        if state in (CYCLE, RESET):
            if not on and state == RESET:
                return 2  # AMT cannot reset a PC that is off
            if on:
                await self._run(backend.power_off)
            await self._run(backend.power_on, self.pc.next_boot())
            return 0
        return 1  # not supported: sleep, hibernate... the lab's PCs have none


# -- the lab -------------------------------------------------------------------------------------
class AmtLab:
    """PCs served on 127.0.0.1 free ports by one event loop in a thread of this process.

    ``endpoints``: ``127.0.0.1:PORT`` of each PC, in order; ``endpoint(pc)`` reaches its socket
    (``stall`` it for a timeout test). ``consecutive``: the PCs listen on consecutive ports (a
    ``HOST:PORT-PORT`` range names them all). ``tls``: a server SSL context (certificate and
    key loaded): the PCs speak HTTPS, as on AMT's port 16993. Leaving the ``with`` block closes
    every socket.
    """

    def __init__(self, pcs: Sequence[AmtPc], user: str, password: str, consecutive: bool = False,
                 tls: ssl.SSLContext | None = None) -> None:
        self.pcs = list(pcs)
        self.consecutive = consecutive
        self.tls = tls
        self._user, self._password = user, password
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="amt-lab", daemon=True)
        self._sockets: list[Endpoint] = []

    def __enter__(self) -> AmtLab:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=30)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def _start(self) -> None:
        for attempt in range(50):
            base = 20000 + secrets.randbelow(20000) if self.consecutive else 0
            try:
                for offset, pc in enumerate(self.pcs):
                    endpoint = Endpoint(DigestGate(self._user, self._password), PcService(pc, self._blocking))
                    await endpoint.start(port=base + offset if base else 0, tls=self.tls)
                    self._sockets.append(endpoint)
                return
            except OSError:
                if not self.consecutive or attempt == 49:
                    raise
                for endpoint in self._sockets:  # a port of the block is taken: try another block
                    await endpoint.stop()
                self._sockets.clear()

    async def _blocking(self, call: Callable[..., Any], *args: Any) -> Any:
        return await self._loop.run_in_executor(None, call, *args)

    async def _stop(self) -> None:
        for endpoint in self._sockets:
            await endpoint.stop()
        tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def close(self) -> None:
        """Close every socket and stop the loop (idempotent)."""
        if self._loop.is_closed():
            return
        if self._thread.is_alive():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=30)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)
        self._loop.close()

    @property
    def endpoints(self) -> list[str]:
        return [f"127.0.0.1:{endpoint.port}" for endpoint in self._sockets]

    def endpoint(self, pc: AmtPc) -> Endpoint:
        return self._sockets[self.pcs.index(pc)]

    def address(self, pc: AmtPc) -> str:
        return f"127.0.0.1:{self.endpoint(pc).port}"


def main(argv: Sequence[str] | None = None) -> int:
    """Serve ``--count`` power-only PCs until SIGTERM or SIGINT; print their endpoints as JSON."""
    parser = argparse.ArgumentParser(
        prog="python -m encompass_core.testing.amt_responder",
        description="Serve lab AMT PCs (power state only) on 127.0.0.1. The password comes from "
                    "$AMT_LAB_PASSWORD, never from the command line.")
    parser.add_argument("--count", type=int, default=1, help="how many PCs (default 1)")
    parser.add_argument("--user", default="admin", help="the digest user (default admin)")
    parser.add_argument("--latency", type=float, default=0.0,
                        help="seconds each PC takes to answer (a firmware's delay; default 0)")
    args = parser.parse_args(argv)
    password = os.environ.get("AMT_LAB_PASSWORD")
    if not password:
        print("amt_responder: set AMT_LAB_PASSWORD to the password the PCs take", file=sys.stderr)
        return 2
    pcs = [AmtPc(f"pc{index + 1}", latency=args.latency) for index in range(args.count)]
    stop = threading.Event()
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda *_: stop.set())
    with AmtLab(pcs, args.user, password) as lab:
        print(json.dumps({"endpoints": lab.endpoints,
                          "pcs": [{"hostname": pc.hostname, "uuid": pc.uuid} for pc in pcs]}),
              flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
