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
boot source says. It lives beside the ``amt`` plugin but does not use its client: this module
speaks the protocol from the SDK's text, so the client is tested against something it did not write.

Use it as a context manager (``with AmtLab([AmtPc("pc1")], "admin", password) as lab:``) in
tests and demos, or as a process (``python -m encompass_amt.lab.responder --count 100``,
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
from typing import Any

from .pcs import (
    BOOT_CONFIG_ID,
    BOOT_SETTINGS_ID,
    CYCLE,
    FORCED_SOURCES,
    OFF,
    ON,
    REPORTED_OFF,
    REPORTED_ON,
    RESET,
    AmtPc,
    LabPc,
    PcBackend,
    PowerOnly,
    add_lab_pc,
)
from .soap import (
    CIM,
    ENUMERATION,
    SOAP_TYPE,
    TRANSFER,
    WSMAN,
    Request,
    SoapFault,
    envelope,
    fault_reply,
    instance,
    local,
    parse_request,
    reference,
)
from .wsman_http import DigestGate, Endpoint

__all__ = ["AmtLab", "AmtPc", "LabPc", "PcBackend", "PcService", "PowerOnly", "add_lab_pc", "main"]


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
            request = parse_request(data)
            message_id = request.message_id
            name = request.resource.rsplit("/", 1)[-1]
            method = request.action.rsplit("/", 1)[-1]
            if name in self.pc.denied or method in self.pc.denied:
                raise SoapFault("wsman:AccessDenied")
            action, body = await self._dispatch(request, name, method)
            return 200, SOAP_TYPE, envelope(action, message_id, body)
        except SoapFault as refused:
            return fault_reply(refused.subcode, message_id, refused.detail)

    async def _dispatch(self, request: Request, name: str, method: str) -> tuple[str, str]:
        known = {"CIM_AssociatedPowerManagementService", "CIM_PowerManagementService",
                 "CIM_ComputerSystemPackage", "CIM_Chassis", "AMT_EthernetPortSettings",
                 "AMT_GeneralSettings", "AMT_BootSettingData", "CIM_BootService",
                 "CIM_BootConfigSetting"}
        if name not in known:
            raise SoapFault("wsa:DestinationUnreachable")
        if request.action == f"{TRANSFER}/Get":
            return f"{TRANSFER}/GetResponse", instance(request.resource, await self._get(request, name))
        if request.action == f"{TRANSFER}/Put" and name == "AMT_BootSettingData":
            self._check_selector(request, "InstanceID", BOOT_SETTINGS_ID)
            self._put_boot_settings(request)
            return f"{TRANSFER}/PutResponse", instance(request.resource, self.pc.boot_settings)
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
                    "ServiceProvided": reference(CIM + "CIM_PowerManagementService",
                                                  {"Name": "Intel(r) AMT Power Management Service"}),
                    "UserOfService": reference(CIM + "CIM_ComputerSystem", {"Name": "ManagedSystem"})}
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
            return [instance(resource, {"PlatformGUID": guid,
                                         "Antecedent": reference(CIM + "CIM_Chassis", {"Tag": pc.serial}),
                                         "Dependent": reference(CIM + "CIM_ComputerSystem",
                                                                 {"Name": "ManagedSystem"})})]
        if name == "CIM_Chassis":
            return [instance(resource, {"CreationClassName": "CIM_Chassis", "ChassisPackageType": 3,
                                         "Manufacturer": "Encompass Lab", "Model": "QEMU PC (AMT)",
                                         "SerialNumber": pc.serial, "Tag": pc.serial,
                                         "PackageType": 3})]
        if name == "AMT_EthernetPortSettings":
            return [instance(resource, {"ElementName": "Intel(r) AMT Ethernet Port Settings",
                                         "InstanceID": f"Intel(r) AMT Ethernet Port Settings {index}",
                                         "MACAddress": mac.replace(":", "-").lower(),
                                         "LinkIsUp": "true", "DHCPEnabled": "true"})
                    for index, mac in enumerate(pc.macs)]
        raise SoapFault("wsa:ActionNotSupported")

    def _put_boot_settings(self, request: Request) -> None:
        given = request.find("AMT_BootSettingData")
        if given is None:
            raise SoapFault("wsman:InvalidRepresentation", "An AMT_BootSettingData is expected.")
        values = {local(child.tag): (child.text or "").strip() for child in given}
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
        prog="python -m encompass_amt.lab.responder",
        description="Serve lab AMT PCs (power state only) on 127.0.0.1. The password comes from "
                    "$AMT_LAB_PASSWORD, never from the command line.")
    parser.add_argument("--count", type=int, default=1, help="how many PCs (default 1)")
    parser.add_argument("--user", default="admin", help="the digest user (default admin)")
    parser.add_argument("--latency", type=float, default=0.0,
                        help="seconds each PC takes to answer (a firmware's delay; default 0)")
    args = parser.parse_args(argv)
    password = os.environ.get("AMT_LAB_PASSWORD")
    if not password:
        print("encompass_amt.lab.responder: set AMT_LAB_PASSWORD to the password the PCs take",
              file=sys.stderr)
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
