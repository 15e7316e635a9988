"""The demo's customization: two items on the master (in its root partition), a value for each
clone."""

from __future__ import annotations

from ..context import Context
from ..errors import DriverError
from ..model import CustomizationItem
from ..operations import master_items
from .bootdisk import ROOT_PARTITION

DEMO_ITEMS = (
    CustomizationItem(key="hostname", type="file", path="/etc/hostname",
                      partition=ROOT_PARTITION,
                      description="the machine's name", prompt="Hostname", default="master"),
    CustomizationItem(key="hello", type="bootscript", path="/usr/local/sbin/encompass-hello",
                      partition=ROOT_PARTITION,
                      description="says hello once, at first boot", prompt="Script"),
)

HELLO = 'echo "demo-bootscript: $(hostname) was customized by Encompass"\n'


def customize_demo_clones(ctx: Context, names: list[str]) -> None:
    """Put the demo items on master 'demo' (once) and customize each clone with its name."""
    from ..operations import customize as customize_op

    with ctx.store.snapshot() as tx:
        have = {item.key for item in tx.image("demo").items}
    for item in DEMO_ITEMS:
        if item.key not in have:
            master_items.add_item(ctx, "demo", item)
    values = {name: {"hostname": f"{name}\n", "hello": HELLO} for name in names}
    results = customize_op.customize_images(ctx, names, values)
    failed = [r for r in results if r.state != "ready"]
    if failed:
        raise DriverError(f"customizing {failed[0].name} failed: {failed[0].error}")
