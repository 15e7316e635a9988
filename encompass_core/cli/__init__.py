"""The ``encompass`` command line: thin click commands over :mod:`encompass_core.operations`.

Exit codes: 0 success, 1 other error, 2 bad input, 3 not found, 4 conflict (state, names,
dependents), 5 configuration or metadata, 6 plugin, 7 driver or peer, 8 confinement,
130 interrupted.
"""

from __future__ import annotations

import atexit
import gc
import os
import sys
from typing import TYPE_CHECKING

import click

from ..errors import EncompassError
from . import output

if TYPE_CHECKING:
    from ..plugins import PluginHost

#: Built-in commands and the modules that make them (and extend their groups), in the order a
#: new user meets them. A module is imported only when one of its commands is used: start-up
#: time is paid by every command.
BUILTIN_COMMANDS = {
    "master": ("images", "customize", "versions"),
    "clone": ("images",),
    "image": ("images", "customize"),
    "customize": ("customize",),
    "uncustomize": ("customize",),
    "rebase": ("versions",),
    "discover": ("machines",),
    "machine": ("machines", "moves"),
    "deploy": ("machines",),
    "undeploy": ("machines",),
    "migrate": ("moves",),
    "reassign": ("moves",),
    "swap": ("moves",),
    "export": ("transfer",),
    "import": ("transfer",),
    "init": ("admin",),
    "pool": ("admin",),
    "repair": ("admin",),
    "store": ("store_cmd",),
    "plugins": ("plugins_cmd",),
    "demo": ("demo",),
}


class EncompassGroup(click.Group):
    """Built-in commands load on first use; plugins' commands when a name is not built in."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        for name in BUILTIN_COMMANDS:
            self.get_command(ctx, name)
        _add_plugin_commands(self)
        return list(dict.fromkeys([*BUILTIN_COMMANDS, *self.commands]))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.commands:
            if name in BUILTIN_COMMANDS:
                _import_commands(self, BUILTIN_COMMANDS[name])
            else:
                _add_plugin_commands(self)
        return super().get_command(ctx, name)


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
    from ..context import Context  # not for --help: configuration and store are not read then

    if home:
        os.environ["ENCOMPASS_HOME"] = home
    _VERBOSE[:] = [verbose]
    click_ctx.obj = Context(host=_host)  # plugins load when first needed
    click_ctx.obj.verbose = verbose
    if _HOSTS and _HOSTS[0].loaded:  # loaded already, to find a plugin's command
        _report_failures(_HOSTS[0], verbose)


_HOSTS: list[PluginHost] = []
_VERBOSE: list[bool] = [False]
_imported: set[str] = set()
_reported: list[bool] = []


def _host() -> PluginHost:
    """The CLI's one plugin host (not loaded yet: :class:`Context` loads it when needed)."""
    if not _HOSTS:
        from ..plugins import PluginHost

        host = PluginHost()
        # Failures are told when plugins load, one line each (traceback with -v).
        host.after_load = lambda loaded: _report_failures(loaded, _VERBOSE[0])
        host.on_hook_failure = lambda info: output.note(
            f"encompass: plugin '{info.name}' ({info.distribution}) {info.error}; its drivers are "
            "left out" + ("" if _VERBOSE[0] else " (-v shows the traceback)"))
        _HOSTS.append(host)
    return _HOSTS[0]


def _report_failures(host: PluginHost, verbose: bool) -> None:
    """One line on stderr per plugin that failed to load (its traceback with -v); once."""
    if _reported:
        return
    _reported.append(True)
    for info in host.failures():
        output.note(f"encompass: plugin '{info.name}' ({info.distribution}) failed to load: {info.error}"
                    + ("" if verbose or not info.traceback else " (-v shows the traceback)"))
        if verbose and info.traceback:
            output.note(info.traceback.rstrip())


def _import_commands(group: click.Group, modules: tuple[str, ...]) -> None:
    import importlib

    for name in modules:
        if name not in _imported:
            _imported.add(name)
            importlib.import_module(f"{__name__}.{name}").register(group)


def _add_plugin_commands(group: click.Group) -> None:
    """Load the plugins (once) and add the commands they register."""
    if "plugins:commands" in _imported:
        return
    _imported.add("plugins:commands")
    try:
        extra = _host().load().cli_commands()
    except EncompassError as exc:
        output.note(f"encompass: {exc}")
        return
    for name, record in extra.items():
        if name in BUILTIN_COMMANDS or name in group.commands:
            owner = _host().provider("encompass_cli_commands", name)
            output.note(f"encompass: plugin '{owner}' adds a command '{name}' that exists already; ignored")
            continue
        group.add_command(record.command, name)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``encompass`` console script."""
    # What a command leaves is freed with the process: the collector's last passes over every
    # object at exit (90-140 ms once the plugins and a pool were loaded) would only delay it.
    # Registered first, run last of the exit handlers, after the others' clean-up.
    atexit.register(gc.freeze)
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
