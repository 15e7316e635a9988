"""The esx plugin's inventory vs naive pyvmomi attribute access, against a vcsim of 500+ VMs.

One run, printed as a table: wall time and SOAP round trips of reading every VM's name, UUID,
power state, vCPUs, memory, MACs and host. Needs vcsim (built as the plugin's tests build it)::

    PYTHONPATH=plugins/esx:plugins/esx/tests python benchmarks/esx_inventory.py [VMS_PER_POOL]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from pyVmomi import vim
from vcsim_testing import PASSWORD, platform_driver, start_vcsim


def naive(driver) -> tuple[int, float, int]:
    """What pyvmomi invites: walk a container view and read attributes one by one."""
    session = driver.session
    content = session.content
    started, before = time.monotonic(), session.round_trips
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.VirtualMachine], True)
    count = 0
    for vm in view.view:
        _ = (vm.name, vm.config.uuid, vm.runtime.powerState, vm.config.hardware.numCPU,
             vm.config.hardware.memoryMB, vm.runtime.host.name,
             [d.macAddress for d in vm.config.hardware.device
              if isinstance(d, vim.vm.device.VirtualEthernetCard)])
        count += 1
    view.DestroyView()
    return count, time.monotonic() - started, session.round_trips - before


def plugin(driver) -> tuple[int, float, int]:
    session = driver.session
    session.content  # noqa: B018 - logged in, as for the naive run
    started, before = time.monotonic(), session.round_trips
    machines = driver.discover()
    return len(machines), time.monotonic() - started, session.round_trips - before


def main() -> None:
    per_pool = int(sys.argv[1]) if len(sys.argv) > 1 else 250
    os.environ["VCSIM_PASSWORD"] = PASSWORD
    with tempfile.TemporaryDirectory(prefix="enc-vcsim-bench-") as folder:
        with start_vcsim(Path(folder) / "vcsim", machines=per_pool) as server:
            rows = []
            for name, measure in (("plugin (RetrievePropertiesEx)", plugin),
                                  ("naive pyvmomi attributes", naive)):
                driver = platform_driver(Path(folder), server.settings())
                rows.append((name, *measure(driver)))
                driver.close()
    print(f"{'method':32} {'VMs':>6} {'seconds':>9} {'round trips':>12}")
    for name, count, seconds, trips in rows:
        print(f"{name:32} {count:6d} {seconds:9.2f} {trips:12d}")
    (_, _, fast, few), (_, _, slow, many) = rows
    print(f"plugin: {many / max(few, 1):.0f}x fewer round trips, {slow / max(fast, 1e-9):.0f}x faster")


if __name__ == "__main__":
    main()
