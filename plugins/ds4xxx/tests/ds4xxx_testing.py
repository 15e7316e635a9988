"""What the ds4xxx tests share: the tgt daemon and simulator handles, pools on them (the
simulator itself is the plugin's: :mod:`encompass_ds4xxx.smclisim`, run as ``SMcli`` here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import attrs
from encompass_ds4xxx import lab_peer
from encompass_ds4xxx.driver import Ds4xxxStorageDriver

from encompass_core.config import Config, Section
from encompass_core.testing.tgt import Tgtd

HERE = Path(__file__).parent
SMCLI = HERE / "SMcli"
CONTROLLERS = list(lab_peer.CONTROLLERS)
UTILITY_INITIATOR = "iqn.2024-01.org.encompass:utility"
ARRAY_SIZE = "256 MB"
ENCOMPASS = Path(sys.executable).with_name("encompass")


@attrs.define
class Simulator:
    """The simulated subsystem: its state file, its controllers, its portal."""

    state_path: Path
    tgtd: Tgtd  # encompass_core.testing.tgt's
    controllers: list[str] = attrs.Factory(lambda: list(CONTROLLERS))

    @property
    def portal(self) -> str:
        return f"127.0.0.1:{self.tgtd.port}"

    def smcli(self, script: str, *extra: str, addresses: list[str] | None = None
              ) -> subprocess.CompletedProcess:
        return subprocess.run([str(SMCLI), *(addresses or self.controllers), "-c", script, *extra],
                              capture_output=True, text=True, check=False,
                              env={**os.environ, "SMCLI_SIM_STATE": str(self.state_path)})

    def state(self) -> dict[str, Any]:
        return json.loads(self.state_path.read_text())

    def set(self, **values: Any) -> None:
        """Change the simulator's state (``controllers__A__online=False``)."""
        pairs = [f"{key.replace('__', '.')}={json.dumps(value)}" for key, value in values.items()]
        subprocess.run([str(SMCLI), "--sim-set", *pairs], check=True,
                       env={**os.environ, "SMCLI_SIM_STATE": str(self.state_path)})

    def labels(self) -> set[str]:
        return {drive["label"] for drive in self.state()["drives"].values()}

    def mappings(self) -> dict[str, tuple[str, int]]:
        return {d["label"]: (d["mapping"]["host"], d["mapping"]["lun"])
                for d in self.state()["drives"].values() if d["mapping"]}

    def sees(self, initiator: str) -> str:
        """What ``iscsi-ls`` shows an initiator (its targets and LUNs)."""
        done = subprocess.run(["iscsi-ls", "-i", initiator, "-s", f"iscsi://{self.portal}"],
                              capture_output=True, text=True, check=False, timeout=30)
        return done.stdout


def make_driver(folder: Path, reachable: bool = True, name: str = "san", **settings: Any
                ) -> Ds4xxxStorageDriver:
    """A ds4xxx pool on the simulator (not ``reachable``: on controllers nobody answers at)."""
    table = {"smcli": str(SMCLI), "controllers": list(CONTROLLERS), "array": "1",
             "utility_initiator": UTILITY_INITIATOR, "lun_offset": 1, "poll_interval": 0.05}
    if not reachable:
        table["controllers"] = ["192.0.2.1", "192.0.2.2"]
    table.update(settings)
    section = Section(name, "ds4xxx", table)
    config = Config(path=folder / "encompass.toml", defaults={}, pools={name: section}, platforms={})
    return Ds4xxxStorageDriver(section, config)


def cli_env(home: Path) -> dict[str, str]:
    """The environment of an ``encompass`` run in ``home`` (no user allow-list)."""
    values = {k: v for k, v in os.environ.items() if not k.startswith("ENCOMPASS_")}
    values.update(ENCOMPASS_HOME=str(home), XDG_CACHE_HOME=str(home.parent / "xdg-cache"), COLUMNS="200")
    return values


def encompass(home: Path, *args: str) -> subprocess.CompletedProcess:
    """Run the ``encompass`` command in ``home``."""
    return subprocess.run([str(ENCOMPASS), *args], env=cli_env(home), capture_output=True, text=True,
                          timeout=300, check=False)


def ok(home: Path, *args: str) -> str:
    """Run ``encompass``, check it succeeded, return what it printed."""
    done = encompass(home, *args)
    assert done.returncode == 0, f"encompass {' '.join(args)}: {done.stderr}"
    return done.stdout
