"""Reference pages drawn from the code itself, for the documentation site.

The site (``mkdocs.yml``, ``docs/``) replaces a marker line ``<!-- generated: NAME -->`` in a
page with what :data:`SECTIONS` makes of ``NAME``: the configuration reference from the settings
each installed driver and opener declares, the lifecycle from :mod:`encompass_core.lifecycle`'s
table, the driver contract from :mod:`encompass_core.contracts`' classes and docstrings. A page
can therefore never describe a setting, a state or a method that the code does not have.
"""

from __future__ import annotations

import inspect
import re
import shutil
import subprocess
from collections.abc import Callable, Iterable

import attrs

from . import lifecycle
from .settings import TYPE_NAMES, Setting

MARKER = re.compile(r"^<!-- generated: ([a-z-]+) -->$", re.MULTILINE)


# -- configuration -------------------------------------------------------------------------
def _settings_table(settings: Iterable[Setting]) -> str:
    rows = ["| key | value | default | meaning |", "|---|---|---|---|"]
    for setting in settings:
        if setting.secret:
            key = f"`{setting.name}_env` or `{setting.name}_file`"
            kind = "secret: an environment variable's name, or a file of mode 0600"
        else:
            key = f"`{setting.name}`"
            kind = TYPE_NAMES.get(setting.type, "a value")
            if setting.choices:
                kind += ": " + ", ".join(f"`{c}`" for c in setting.choices)
            if setting.minimum is not None:
                kind += f", at least {setting.minimum:g}"
        default = "" if setting.default is None or setting.secret else f"`{setting.default!r}`"
        meaning = _cell(setting.help) + (" (required)" if setting.required else "")
        rows.append(f"| {key} | {kind} | {default} | {meaning} |")
    return "\n".join(rows) if len(rows) > 2 else "_No settings besides `driver`._"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _sentence(text: str) -> str:
    text = _cell(text)
    return text if not text or text.endswith(".") else text + "."


def _origin(host, hook: str, name: str) -> str:
    plugin = host.provider(hook, name)
    info = host.infos.get(plugin) if plugin else None
    if info is None:
        return ""
    where = "built into the core" if info.builtin else f"plugin `{plugin}` ({info.distribution})"
    return f"From {where}."


def configuration_reference(host=None) -> str:
    """Every table ``encompass.toml`` may hold, with each key the code accepts there."""
    from .config import DEFAULTS_SETTINGS, STORE_SETTINGS
    from .plugins import PluginHost

    host = host or PluginHost().load()
    out = ["## `[defaults]`", "", _settings_table(DEFAULTS_SETTINGS), "",
           "## `[store]`", "", "Where the metadata lives (the embedded TinyDB files, or PostgreSQL).", "",
           _settings_table(STORE_SETTINGS), ""]
    for title, hook, records in (
        ("Pools: `[pools.NAME]`", "encompass_storage_drivers", host.storage_drivers()),
        ("Platforms: `[platforms.NAME]`", "encompass_platform_drivers", host.platform_drivers()),
    ):
        out += [f"## {title}", ""]
        for name, record in sorted(records.items()):
            out += [f"### `driver = \"{name}\"`", "", " ".join(
                part for part in (_sentence(record.description), _origin(host, hook, name)) if part)]
            if record.debian_packages:
                out += ["", "Debian packages: " + ", ".join(f"`{p}`" for p in record.debian_packages) + "."]
            out += ["", _settings_table(record.settings), ""]
    out += ["## Ways into volumes: `[openers.NAME]`", "",
            "Tried in this order (lower priority first) until one can open a volume.", ""]
    for record in host.volume_openers():
        out += [f"### `[openers.{record.name}]`", "",
                f"Priority {record.priority}. {_sentence(record.description)}",
                "", _settings_table(record.settings), ""]
    out += ["## Customization item types", "", "| `--type` | what it does |", "|---|---|"]
    for name, record in sorted(host.customizers().items()):
        out.append(f"| `{name}` | {_cell(record.description)} |")
    return "\n".join(out) + "\n"


# -- lifecycle -----------------------------------------------------------------------------
def lifecycle_dot() -> str:
    """The lifecycle as a Graphviz graph: stable states boxed, transitional ones oval."""
    lines = ["digraph lifecycle {", '  rankdir=LR; node [fontname="sans-serif"];',
             '  edge [fontname="sans-serif", fontsize=10];',
             f'  "{lifecycle.NEW}" [shape=point, width=0.15];']
    lines += [f'  "{s}" [shape=box, style="rounded,bold"];' for s in lifecycle.STABLE]
    lines += [f'  "{s}" [shape=ellipse, style=dashed];' for s in lifecycle.TRANSITIONAL]
    gone = False
    for op in lifecycle.OPERATIONS.values():
        for source in op.sources:
            lines.append(f'  "{source}" -> "{op.transitional}" [label="{op.name}"];')
        if op.success is None and op.on_crash == "previous":  # back where it came from (export)
            lines += [f'  "{op.transitional}" -> "{source}";' for source in op.sources]
        elif op.success is None:
            gone = True
            lines.append(f'  "{op.transitional}" -> "gone";')
        else:
            lines.append(f'  "{op.transitional}" -> "{op.success}";')
        if op.on_crash != "previous":
            lines.append(f'  "{op.transitional}" -> "{op.on_crash}" [style=dotted, label="crash"];')
    if gone:
        lines.append('  "gone" [shape=doublecircle, label="", width=0.15];')
    for (source, target), name in lifecycle.DIRECT.items():
        lines.append(f'  "{source}" -> "{target}" [label="{name}", style=bold];')
    # Two operations may share a transitional state (clone and flatten hold "cloning"): one arrow.
    return "\n".join([*dict.fromkeys(lines), "}"]) + "\n"


def lifecycle_svg() -> str:
    """:func:`lifecycle_dot` drawn by Graphviz's ``dot`` (Debian package ``graphviz``)."""
    if not shutil.which("dot"):
        raise RuntimeError("drawing the lifecycle needs Graphviz's dot: apt-get install graphviz")
    done = subprocess.run(["dot", "-Tsvg"], input=lifecycle_dot(), capture_output=True, text=True,
                          check=True, timeout=60)
    return done.stdout[done.stdout.index("<svg"):]


def _then(op: lifecycle.Operation) -> str:
    if op.success:
        return f"`{op.success}`"
    return "the previous state" if op.on_crash == "previous" else "gone"


def lifecycle_reference() -> str:
    """The diagram, then the operations' table in words."""
    rows = ["| operation | from | holds | then | masters | clones | a crash leaves |",
            "|---|---|---|---|---|---|---|"]
    for op in lifecycle.OPERATIONS.values():
        crash = "the previous state" if op.on_crash == "previous" else f"`{op.on_crash}`"
        rows.append(
            f"| `{op.name}` | {', '.join(f'`{s}`' for s in op.sources)} | `{op.transitional}` "
            f"| {_then(op)} | {'yes' if op.masters else 'no'} "
            f"| {'yes' if op.clones else 'no'} | {crash} |")
    direct = ["| from | to | command |", "|---|---|---|"] + [
        f"| `{a}` | `{b}` | {name} |" for (a, b), name in lifecycle.DIRECT.items()]
    return "\n".join([
        '<div class="lifecycle-diagram">', lifecycle_svg(), "</div>", "",
        "Boxes are stable states, dashed ovals the transitional states that lock an image while "
        "an operation holds it; dotted arrows say where `encompass repair` leaves an image whose "
        "process died.", "", "### Operations", "", *rows, "", "### Direct changes", "", *direct,
    ]) + "\n"


# -- the driver contract ---------------------------------------------------------------------
_ROLE = re.compile(r":(?:meth|class|func|mod|data|attr|exc):`~?(?:[\w.]*\.)?(\w+)`")


def _doc(obj: object) -> str:
    """A docstring as Markdown: reST's ``literal`` and :role:`~a.b.name` become `name`."""
    text = inspect.cleandoc(obj.__doc__ or "").strip()
    return _ROLE.sub(r"`\1`", text).replace("``", "`")


def _methods(cls: type) -> list[tuple[str, str]]:
    out = []
    for name, member in cls.__dict__.items():
        if name.startswith("_"):
            continue
        function = member.fget if isinstance(member, property) else member
        if not callable(function):
            continue
        signature = "" if isinstance(member, property) else str(inspect.signature(function))
        out.append((f"{name}{signature}".replace("'", ""), _doc(function)))
    return out


def _attrs_fields(cls: type) -> str:
    rows = ["| field | type | default |", "|---|---|---|"]
    for field in attrs.fields(cls):
        default = field.default
        if isinstance(default, attrs.Factory):
            default = default.factory()
        shown = "required" if default is attrs.NOTHING else f"`{default!r}`"
        kind = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", str(field.type))
        rows.append(f"| `{field.name}` | `{kind}` | {shown} |")
    return "\n".join(rows)


def contract_reference() -> str:
    """Each driver class's methods (required first, as the classes order them) and each value
    type's fields, with the docstrings the code carries."""
    from . import contracts

    out: list[str] = []
    for cls in (contracts.StorageDriver, contracts.PlatformDriver):
        out += [f"## `{cls.__name__}`", "", _doc(cls), ""]
        for signature, doc in _methods(cls):
            out += [f"### `{signature}`", "", doc or "_Undocumented._", ""]
    out += ["## Values", ""]
    for cls in (contracts.StorageCapabilities, contracts.PlatformCapabilities, contracts.AttachRequest,
                contracts.Attachment, contracts.DiscoveredVolume, contracts.JobStatus):
        out += [f"### `{cls.__name__}`", "", _doc(cls), "", _attrs_fields(cls), ""]
    out += ["### Constants", "",
            "Attachment kinds (`ATTACH_KINDS`): " + ", ".join(f"`{k}`" for k in contracts.ATTACH_KINDS) + ".",
            "", "Boot modes (`BOOT_MODES`): " + ", ".join(f"`{k}`" for k in contracts.BOOT_MODES) + ".", ""]
    return "\n".join(out)


SECTIONS: dict[str, Callable[[], str]] = {
    "configuration": configuration_reference,
    "lifecycle": lifecycle_reference,
    "contract": contract_reference,
}


def expand(markdown: str) -> str:
    """``markdown`` with each ``<!-- generated: NAME -->`` line replaced by its section."""
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in SECTIONS:
            raise KeyError(f"no generated section '{name}' (known: {', '.join(SECTIONS)})")
        return SECTIONS[name]()
    return MARKER.sub(replace, markdown)
