"""The hook reference documents every hook with its exact signature, and each is exercised."""

import inspect
import re
from pathlib import Path

from encompass_core import config, hookimpl, hookspecs
from encompass_core.contracts import PlatformDriver
from encompass_core.operations import master_items
from encompass_core.records import PlatformDriverRecord

ROOT = Path(__file__).resolve().parents[2]
HOOKS = [name for name in dir(hookspecs) if name.startswith("encompass_")]


def _signature(name: str) -> str:
    function = getattr(hookspecs, name)
    text = str(inspect.signature(function))
    return f"{name}{text}".replace("'", "")


def test_every_hook_is_documented_with_its_signature():
    reference = (ROOT / "docs" / "hooks.md").read_text()
    documented = re.findall(r"^### `(encompass_\w+)\(", reference, re.MULTILINE)
    assert sorted(documented) == sorted(HOOKS)
    for name in HOOKS:
        assert f"### `{_signature(name)}`" in reference, f"docs/hooks.md: signature of {name}"


class Probe:
    """A plugin implementing every hook, recording which ones the core calls."""

    def __init__(self) -> None:
        self.called: set[str] = set()

    @hookimpl
    def encompass_storage_drivers(self):
        self.called.add("encompass_storage_drivers")
        return []

    @hookimpl
    def encompass_platform_drivers(self):
        self.called.add("encompass_platform_drivers")
        yield PlatformDriverRecord(name="probe", factory=ProbePlatform)

    @hookimpl
    def encompass_customizers(self):
        self.called.add("encompass_customizers")
        return []

    @hookimpl
    def encompass_volume_openers(self):
        self.called.add("encompass_volume_openers")
        return []

    @hookimpl
    def encompass_cli_commands(self):
        self.called.add("encompass_cli_commands")
        return []

    @hookimpl
    def encompass_discover_platforms(self, context):
        self.called.add("encompass_discover_platforms")
        return []

    @hookimpl
    def encompass_clone_volume(self, source, target_pool, request, progress):
        self.called.add("encompass_clone_volume")

    @hookimpl
    def encompass_image_event(self, event):
        self.called.add("encompass_image_event")


class ProbePlatform(PlatformDriver):
    def __init__(self, section, config) -> None:
        self.platform = section.name

    def discover(self):
        return []


def test_every_hook_is_called_by_the_core(tmp_path: Path) -> None:
    """Each hook is called when the operation it serves runs: a hook the core stopped calling
    (or never called) fails here, whatever names its source mentions."""
    from click.testing import CliRunner

    from encompass_core import cli
    from encompass_core.context import Context
    from encompass_core.operations import clone, importing, machines, reconcile
    from encompass_core.plugins import PluginHost

    home = tmp_path / "home"
    config.write_default(home)
    with (home / config.CONFIG_NAME).open("a") as table:
        table.write('\n[platforms.probe]\ndriver = "probe"\n')
    tree = tmp_path / "tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc" / "hostname").write_text("base\n")
    probe = Probe()
    host = PluginHost().load(allow="none-of-them")
    host.register(probe, name="probe")
    ctx = Context(home=home, host=host)

    importing.import_master(ctx, "base", [tree])
    clone.clone_images(ctx, "base", ["web1"])
    reconcile.reconcile(ctx, apply=True)
    machines.propose_platforms(ctx, ("127.0.0.1",))
    from encompass_core.customization.volumes import open_image_volume
    with ctx.store.snapshot() as tx:
        image = tx.image("web1")
    with open_image_volume(ctx, image, 0, None, writable=False) as files:
        assert files.read("/etc/hostname") == b"base\n"
    master_items.customizer(ctx, "file")
    cli._HOSTS[:] = [host]  # the CLI's own host: a command name it does not know loads plugins
    try:
        CliRunner().invoke(cli.cli, ["--home", str(home), "no-such-command"])
    finally:
        cli._HOSTS.clear()

    assert probe.called == set(HOOKS)
