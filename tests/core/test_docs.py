"""The hook reference documents every hook with its exact signature, and each is exercised."""

import ast
import inspect
import re
from pathlib import Path

import pytest

from encompass_core import config, hookimpl, hookspecs
from encompass_core.contracts import PlatformDriver
from encompass_core.errors import NotFound
from encompass_core.operations import master_items
from encompass_core.records import PlatformDriverRecord

ROOT = Path(__file__).resolve().parents[2]
HOOKS = [name for name in dir(hookspecs) if name.startswith("encompass_")]


def _sections(reference: str) -> dict[str, tuple[str, str]]:
    """Each ``### `hook(...)``` section of the reference: its heading's signature and its text."""
    parts = re.split(r"^(### `encompass_\w+\(.*`)$", reference, flags=re.MULTILINE)
    found = {}
    for heading, body in zip(parts[1::2], parts[2::2], strict=True):
        signature = heading.removeprefix("### `").removesuffix("`")
        body = re.split(r"^##", body, flags=re.MULTILINE)[0]
        found[signature.split("(")[0]] = (signature, body)
    return found


def _parsed(signature: str) -> tuple[list[tuple[str, str | None]], str | None]:
    """The parameters (name, annotation) and the return annotation of a signature's text."""
    function = ast.parse(f"def {signature}: ...").body[0]
    assert isinstance(function, ast.FunctionDef)
    params = [(arg.arg, ast.unparse(arg.annotation) if arg.annotation else None)
              for arg in function.args.args]
    returns = ast.unparse(function.returns) if function.returns else None
    return params, returns


def _declared(name: str) -> tuple[list[tuple[str, str | None]], str | None]:
    """The same, read from the hook spec in the code (its annotations are strings)."""
    signature = inspect.signature(getattr(hookspecs, name))
    params = [(p.name, None if p.annotation is p.empty else ast.unparse(ast.parse(p.annotation)))
              for p in signature.parameters.values()]
    returns = signature.return_annotation
    return params, None if returns is signature.empty else ast.unparse(ast.parse(returns))


def _firstresult(name: str) -> bool:
    return bool(getattr(hookspecs, name).encompass_spec["firstresult"])


def test_every_hook_has_one_section_and_every_section_a_hook():
    sections = _sections((ROOT / "docs" / "hooks.md").read_text())
    assert sorted(sections) == sorted(HOOKS), "docs/hooks.md: one ### section per hook spec"


@pytest.mark.parametrize("name", HOOKS)
def test_the_section_gives_the_exact_signature(name):
    signature, _body = _sections((ROOT / "docs" / "hooks.md").read_text())[name]
    assert _parsed(signature) == _declared(name), \
        f"docs/hooks.md: the heading of {name} does not match encompass_core/hookspecs.py"


@pytest.mark.parametrize("name", HOOKS)
def test_the_section_says_whether_the_hook_is_firstresult(name):
    _signature, body = _sections((ROOT / "docs" / "hooks.md").read_text())[name]
    said = re.findall(r"^\*\*firstresult\*\*: (yes|no)\b", body, re.MULTILINE)
    assert said == ["yes" if _firstresult(name) else "no"], \
        f"docs/hooks.md: {name} needs one line '**firstresult**: yes|no' matching the spec"


@pytest.mark.parametrize("name", HOOKS)
def test_the_section_has_an_example_implementing_the_hook(name):
    _signature, body = _sections((ROOT / "docs" / "hooks.md").read_text())[name]
    examples = re.findall(r"```python\n(.*?)```", body, re.DOTALL)
    implementing = [code for code in examples if f"def {name}(" in code and "@hookimpl" in code]
    assert implementing, f"docs/hooks.md: the section of {name} has no example implementing it"
    for code in implementing:
        compile(code, f"docs/hooks.md ({name})", "exec")
        function = next(node for node in ast.walk(ast.parse(code))
                        if isinstance(node, ast.FunctionDef) and node.name == name)
        wanted = [param for param, _annotation in _declared(name)[0]]
        assert [arg.arg for arg in function.args.args] == wanted, \
            f"docs/hooks.md: the example of {name} takes the wrong arguments"


def test_the_meta_tests_catch_a_wrong_signature_and_a_missing_section():
    """The checks above can fail: a changed parameter or a dropped section is seen."""
    reference = (ROOT / "docs" / "hooks.md").read_text()
    changed = reference.replace("encompass_image_event(event: Event)", "encompass_image_event(evt: Event)")
    signature, _body = _sections(changed)["encompass_image_event"]
    assert _parsed(signature) != _declared("encompass_image_event")
    dropped = re.sub(r"^### `encompass_customizers.*?(?=^### )", "", reference,
                     flags=re.MULTILINE | re.DOTALL)
    assert "encompass_customizers" not in _sections(dropped)


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
    def encompass_item_presets(self):
        self.called.add("encompass_item_presets")
        return []

    @hookimpl
    def encompass_cli_commands(self):
        self.called.add("encompass_cli_commands")
        return []

    @hookimpl
    def encompass_lab_peers(self):
        self.called.add("encompass_lab_peers")
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
    from encompass_core.demo.physical import lab_peers
    assert lab_peers(ctx) == []  # what `encompass demo --physical` starts
    from encompass_core.customization.volumes import open_image_volume
    with ctx.store.snapshot() as tx:
        image = tx.image("web1")
    with open_image_volume(ctx, image, 0, None, writable=False) as files:
        assert files.read("/etc/hostname") == b"base\n"
    master_items.customizer(ctx, "file")
    with pytest.raises(NotFound, match="no item preset 'windows'"):
        master_items.load_preset(ctx, "base", "windows")
    cli._HOSTS[:] = [host]  # the CLI's own host: a command name it does not know loads plugins
    try:
        CliRunner().invoke(cli.cli, ["--home", str(home), "no-such-command"])
    finally:
        cli._HOSTS.clear()

    assert probe.called == set(HOOKS)
