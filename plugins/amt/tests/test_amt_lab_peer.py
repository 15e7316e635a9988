"""The AMT lab as a lab peer (what ``encompass demo --physical`` starts): the platform table and
environment it gives reach its PCs through the amt driver, and each PC's console is where the
table's console_log says."""

from __future__ import annotations

import pytest
from amt_testing import platform_driver

from encompass_core import records


@pytest.mark.skipif(not hasattr(records, "LabPeer"), reason="this core has no lab peers yet")
def test_the_lab_peer_gives_a_platform_that_reaches_its_pcs(tmp_path, monkeypatch):
    from encompass_amt.lab_peer import lab_peer

    with lab_peer(tmp_path / "lab", None, 2) as peer:
        assert peer.machines == ("pc1", "pc2")
        assert not any(value in repr(peer) for value in peer.environment.values())
        for variable, value in peer.environment.items():
            monkeypatch.setenv(variable, value)
        driver = platform_driver(tmp_path, peer.platform, name=peer.name)
        found = {machine.name: machine for machine in driver.discover()}
        assert sorted(found) == ["pc1", "pc2"] and found["pc1"].power == "off"
        assert driver.console_log(found["pc2"]) == tmp_path / "lab" / "pc2" / "console.log"
