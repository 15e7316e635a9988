"""A lab SAN to try the plugin against: the SMcli simulator (:mod:`.smclisim`, not IBM's SMcli)
in front of a private tgtd on 127.0.0.1, one array, its logical drives real iSCSI LUNs.

``with lab_san(workdir) as peer:`` starts tgtd, writes an ``SMcli`` program and the subsystem's
state into ``workdir``, and yields a :class:`~encompass_core.records.LabPeer` whose ``pool`` is
the ``[pools.NAME]`` table that reaches it; at the end tgtd stops with every target it served.
Offered to the core (``encompass demo --pool san``) through the ``encompass_lab_peers`` hook.
Needs root and Debian ``tgt``.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from encompass_core.records import LabPeer
from encompass_core.testing.tgt import running_tgtd

#: The simulated controllers' addresses: names only, SMcli's simulator answers for them.
CONTROLLERS = ("127.0.0.2", "127.0.0.3")
UTILITY_INITIATOR = "iqn.2026-12.org.encompass.lab:utility"
ARRAY_SIZE = "2 GB"
#: What SMcli runs: the simulator, from wherever this package is installed, with its state.
_PROGRAM = """\
#!{python} -S
# The SMcli simulator of encompass-ds4xxx (not IBM's SMcli), for the lab SAN in {workdir}.
import os
import sys

sys.path.insert(0, {root!r})
os.environ.setdefault("SMCLI_SIM_STATE", {state!r})
from encompass_ds4xxx.smclisim.cli import main

sys.exit(main(sys.argv[1:]))
"""


def write_smcli(workdir: Path, state: Path) -> Path:
    """An ``SMcli`` program in ``workdir`` running the simulator on ``state``."""
    root = str(Path(__file__).resolve().parents[1])
    program = workdir / "SMcli"
    program.write_text(_PROGRAM.format(python=sys.executable, workdir=workdir, root=root,
                                       state=str(state)))
    program.chmod(0o755)
    return program


def init_subsystem(smcli: Path, state: Path, portal: str, control: int, drives: Path,
                   array_size: str = ARRAY_SIZE) -> None:
    """A fresh simulated DS4700 with one array, serving through the tgtd at ``portal``."""
    subprocess.run([str(smcli), "--sim-init", "name=DS4700-sim", f"controllers={','.join(CONTROLLERS)}",
                    f"arrays=1:{array_size}", f"portal={portal}", f"tgt_control={control}",
                    f"data_dir={drives}"],
                   check=True, env={**os.environ, "SMCLI_SIM_STATE": str(state)})


@contextlib.contextmanager
def lab_san(workdir: Path, san_portal: str | None = None, count: int = 0) -> Iterator[LabPeer]:
    """The ``encompass_lab_peers`` start function: a simulated DS4xxx over a private tgtd
    (``san_portal`` and ``count`` are a platform peer's: unused)."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    with running_tgtd(workdir) as tgtd:
        state = workdir / "state.json"
        smcli = write_smcli(workdir, state)
        init_subsystem(smcli, state, tgtd.portal, tgtd.control, workdir / "drives")
        yield LabPeer(name="san", pool={
            "driver": "ds4xxx", "smcli": str(smcli), "controllers": list(CONTROLLERS), "array": "1",
            "utility_initiator": UTILITY_INITIATOR, "lun_offset": 1, "poll_interval": 0.1})


def drives(workdir: Path) -> dict[str, dict]:
    """The simulated subsystem's logical drives by label (what a test or the demo checks)."""
    state = json.loads((Path(workdir) / "state.json").read_text())
    return {drive["label"]: drive for drive in state["drives"].values()}
