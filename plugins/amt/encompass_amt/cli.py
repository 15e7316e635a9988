"""``encompass amt``: what only AMT PCs do: every PC's power at a glance, and a one-time boot
source (PXE, hard drive, CD, IDE-R) for a PC's next power-on."""

from __future__ import annotations

import click

from encompass_core.cli import output
from encompass_core.errors import InvalidInput
from encompass_core.lazy import lazy_module

from .settings import BOOT_CHOICES

# Imported when a command runs: ``encompass --help`` lists this module's commands.
machines_op = lazy_module("encompass_core.operations.machines")


@click.group("amt")
def amt() -> None:
    """PCs with Intel AMT behind amt platforms."""


def _driver(ctx, platform: str):
    from .driver import AmtPlatformDriver

    driver = ctx.platform(platform).driver
    if not isinstance(driver, AmtPlatformDriver):
        raise InvalidInput(f"platform '{platform}' is not an amt platform")
    return driver


@amt.command("power")
@click.argument("platform")
@click.option("--json", "as_json", is_flag=True, help="One JSON object: address to power state.")
@click.pass_obj
def power(ctx, platform: str, as_json: bool) -> None:
    """Show the power state of every PC of PLATFORM, asked all at once (one request each).

    \b
    Example:
      encompass amt power office
    """
    states = _driver(ctx, platform).power_states()
    if as_json:
        output.emit_json(states)
        return
    output.table(("ADDRESS", "POWER"), sorted(states.items()))


@amt.command("boot")
@click.argument("machine")
@click.argument("source", type=click.Choice(BOOT_CHOICES))
@click.pass_obj
def boot(ctx, machine: str, source: str) -> None:
    """Boot MACHINE from SOURCE at its next power-on only (AMT forgets it after that boot).

    pxe: the network; hdd: its hard drive (or its iSCSI LUN 0); cd: its CD drive; ider-cd,
    ider-floppy: IDE redirection of a drive a redirection session serves.

    \b
    Example:
      encompass amt boot pc7 pxe && encompass machine power pc7 reset
    """
    stored = machines_op.machine(ctx, machine)
    _driver(ctx, stored.platform).boot_once(stored, source)
    output.note(f"machine '{machine}' boots {source} at its next power-on "
                f"(encompass machine power {machine} on|reset)")
