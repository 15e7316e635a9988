"""The ``encompass`` command line: thin click commands over :mod:`encompass_core.operations`.

Exit codes: 0 success, 1 other error, 2 bad input, 3 not found, 4 conflict (state, names,
dependents), 5 configuration or metadata, 6 plugin, 7 driver or peer, 8 confinement,
130 interrupted.
"""

from __future__ import annotations

import os
import sys

import click

from ..context import Context
from ..errors import EncompassError
from ..plugins import PluginHost
from . import output


class EncompassGroup(click.Group):
    """Lists commands in the order they were added (the order a new user meets them)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


@click.group(cls=EncompassGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--home", type=click.Path(file_okay=False), envvar="ENCOMPASS_HOME",
              help="Where configuration, metadata and the local pool live [env ENCOMPASS_HOME; "
                   "default ~/.encompass].")
@click.option("-v", "--verbose", is_flag=True, help="Show tracebacks of failed plugins and errors.")
@click.version_option(package_name="encompass-core", prog_name="encompass")
@click.pass_context
def cli(click_ctx: click.Context, home: str | None, verbose: bool) -> None:
    """Encompass keeps master images apart from the machines that run them.

    \b
    Masters are imported once, never used directly: they are cloned (copy-on-write or
    full, many at once), the clones are customized and deployed on machines.

    \b
    A first walk through:
      encompass init                              # ~/.encompass with a local pool
      encompass master import base disk.qcow2     # a master, version 1
      encompass clone base --count 3 --prefix web # web1 web2 web3
      encompass image tree                        # who derives from whom
    """
    if home:
        os.environ["ENCOMPASS_HOME"] = home
    click_ctx.obj = Context(host=_HOST)
    click_ctx.obj.verbose = verbose
    for info in _HOST.failures():
        output.note(f"encompass: plugin '{info.name}' ({info.distribution}) failed to load: {info.error}"
                    + ("" if verbose else " (-v shows the traceback)"))
        if verbose and info.traceback:
            output.note(info.traceback.rstrip())


_HOST = PluginHost()


def _add_commands() -> None:
    from . import admin, customize, demo, images, machines, plugins_cmd

    for module in (images, customize, machines, admin, plugins_cmd, demo):
        module.register(cli)
    try:
        extra = _HOST.cli_commands()
    except EncompassError as exc:
        output.note(f"encompass: {exc}")
        return
    for name, record in extra.items():
        if name in cli.commands:
            owner = _HOST.provider("encompass_cli_commands", name)
            output.note(f"encompass: plugin '{owner}' adds a command '{name}' that exists already; ignored")
            continue
        cli.add_command(record.command, name)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``encompass`` console script."""
    _HOST.load()
    _add_commands()
    verbose = any(a in ("-v", "--verbose") for a in (argv or sys.argv[1:]))
    try:
        cli.main(args=argv, prog_name="encompass", standalone_mode=False)
    except EncompassError as exc:
        output.note(f"encompass: {exc}")
        if verbose:
            import traceback

            output.note("".join(traceback.format_exception(exc)).rstrip())
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        output.note("encompass: aborted")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        output.note("encompass: interrupted")
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
