"""What the tests share: sushy-emulator (sushy-tools), a real Redfish service on 127.0.0.1, and
the driver as the core builds it.

The emulator asks for HTTP basic authentication (an htpasswd file with a bcrypt hash, as sushy-tools
wants), keeps its state in a directory of the test's own (``SUSHY_EMULATOR_STATE_DIR``, not
``/tmp/sushy-emulator``), and serves either its fake driver's systems or a libvirt daemon's
domains. Its traps (PEERS.md): the fake driver changes power 1-11 s after a reset (the driver
polls); ``BootSourceOverrideEnabled: Once`` reads back as ``Continuous``; memory under 1 GiB
reads as 0.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import requests

from encompass_core.config import Config, Section

USERNAME = "admin"
#: Never printed by Encompass, and a test checks it: a distinctive string to search for.
PASSWORD = "Rf-s3cret-4217"


class Emulator(NamedTuple):
    url: str
    username: str
    password: str
    log: Path

    def get(self, path: str) -> dict:
        """A resource as the service shows it (to check what the driver did)."""
        answer = requests.get(f"{self.url}{path}", auth=(self.username, self.password), timeout=30)
        answer.raise_for_status()
        return answer.json()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def fake_system(number: int, name: str) -> dict:
    """A system of the fake driver: powered off, one NIC."""
    return {"uuid": f"4c4c4544-0000-1000-8000-{number:012d}", "name": name, "power_state": "Off",
            "external_notifier": False,
            "nics": [{"mac": f"52:54:00:ab:00:{number:02x}", "ip": f"192.0.2.{number}"}]}


@contextlib.contextmanager
def running_emulator(workdir: Path, settings: dict, args: list[str]) -> Iterator[Emulator]:
    """Start sushy-emulator with ``settings`` (its config file) and ``args``; stop it after."""
    import bcrypt

    workdir.mkdir(parents=True, exist_ok=True)
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    (workdir / "htpasswd").write_text(f"{USERNAME}:{hashed}\n")
    config = dict(settings, SUSHY_EMULATOR_STATE_DIR=str(workdir / "state"),
                  SUSHY_EMULATOR_AUTH_FILE=str(workdir / "htpasswd"))
    (workdir / "emulator.conf").write_text("".join(f"{k} = {v!r}\n" for k, v in config.items()))
    port = free_port()
    program = shutil.which("sushy-emulator", path=str(Path(sys.executable).parent)) or "sushy-emulator"
    log = workdir / "emulator.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([program, "-i", "127.0.0.1", "-p", str(port), "--config",
                                    str(workdir / "emulator.conf"), *args],
                                   stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    emulator = Emulator(f"http://127.0.0.1:{port}", USERNAME, PASSWORD, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"sushy-emulator exited: {log.read_text(errors='replace')[-2000:]}")
            try:
                emulator.get("/redfish/v1/Systems")
                break
            except requests.RequestException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)  # it only answers once Flask listens
        yield emulator
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def make_driver(folder: Path, settings: dict, name: str = "bmc"):
    """The redfish driver of platform ``name`` with ``settings``, as the core builds it."""
    from encompass_redfish.platform import RedfishPlatformDriver

    section = Section(name, "redfish", settings)
    config = Config(path=folder / "encompass.toml", defaults={}, pools={}, platforms={name: section})
    return RedfishPlatformDriver(section, config)
