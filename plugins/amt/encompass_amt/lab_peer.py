"""The lab's AMT PCs as a lab peer (``encompass_lab_peers``): tests and ``encompass demo
--physical`` start it to deploy clones on "physical" PCs that really boot from the SAN.

The PCs are QEMU guests (:mod:`encompass_core.testing.lab`) behind the core's WS-Man responder
(:mod:`encompass_amt.lab.responder`), served from a thread of the process that starts
them; their password is made up for the run and handed over through ``environment`` only.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

PEER_NAME = "amtlab"
PASSWORD_VARIABLE = "ENCOMPASS_LAB_AMT_PASSWORD"


@contextlib.contextmanager
def lab_peer(workdir: Path | str, san_portal: str | None, count: int) -> Iterator[Any]:
    """PCs ``pc1`` .. ``pcCOUNT`` booting their LUN 0 from ``san_portal`` once AMT forces a
    hard-drive boot; yields a :class:`~encompass_core.records.LabPeer`."""
    from encompass_amt.lab.responder import AmtLab, add_lab_pc
    from encompass_core.errors import InvalidInput
    from encompass_core.records import LabPeer
    from encompass_core.testing.lab import Lab

    if not 1 <= count <= 64:
        raise InvalidInput(f"the AMT lab holds 1 to 64 PCs, not {count}")
    password = secrets.token_urlsafe(16)
    with Lab(Path(workdir)) as lab:
        pcs = [add_lab_pc(lab, f"pc{number}", san_portal=san_portal) for number in range(1, count + 1)]
        # Consecutive ports, named as one range: the table holds plain values only.
        with AmtLab(pcs, "admin", password, consecutive=True) as responder:
            ports = [endpoint.rpartition(":")[2] for endpoint in responder.endpoints]
            table = {"driver": "amt", "range": f"127.0.0.1:{ports[0]}-{ports[-1]}", "user": "admin",
                     "password_env": PASSWORD_VARIABLE, "timeout": 10.0,
                     "console_log": str(lab.directory / "{name}" / "console.log")}
            yield LabPeer(name=PEER_NAME, platform=table, machines=tuple(pc.hostname for pc in pcs),
                          environment={PASSWORD_VARIABLE: password})
