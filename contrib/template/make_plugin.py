"""Make a new plugin from this template (what ``./setup_plugins --new`` runs; stdlib only).

The template is a working plugin of every kind at once (its own tests run in CI). A new plugin
keeps one kind: the files of the other kinds are left out, and so are the lines and blocks
marked for them — ``# kind: storage`` at the end of a line keeps that line for that kind only;
a line ``# kind: storage`` alone opens a block that ``# end kind`` closes (``<!-- kind: ... -->``
and ``<!-- end kind -->`` in Markdown). Then ``template`` becomes the new name everywhere, in
file names and text (``Template`` its capitalized form).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

KINDS = ("storage", "platform", "customizer", "opener")

#: The files only one kind keeps.
KIND_FILES = {
    "storage": ("encompass_template/storage.py", "encompass_template/fake_array.py",
                "tests/test_template_storage.py"),
    "platform": ("encompass_template/platform.py", "encompass_template/fake_chassis.py",
                 "tests/test_template_platform.py"),
    "customizer": ("encompass_template/customizer.py", "tests/test_template_customizer.py"),
    "opener": ("encompass_template/opener.py", "tests/test_template_opener.py"),
}
#: Never copied: this script, and what building and testing leave.
SKIPPED = {"make_plugin.py", "__pycache__", ".pytest_cache", "build"}

NAME = re.compile(r"^[a-z][a-z0-9]{1,30}$")
INLINE = re.compile(r"\s*(?:#|<!--) kind: ([a-z ]+?)(?: -->)?\s*$")
BLOCK_START = re.compile(r"^\s*(?:#|<!--) kind: ([a-z ]+?)(?: -->)?\s*$")
BLOCK_END = re.compile(r"^\s*(?:# end kind|<!-- end kind -->)\s*$")
HTML_SPAN = re.compile(r"<!-- kind: ([a-z ]+?) -->(.*?)<!-- end kind -->")


class Refused(Exception):
    """The plugin cannot be made as asked (one line saying why)."""


def keep_kind(text: str, kind: str) -> str:
    """``text`` with what is marked for other kinds left out, and the markers removed."""
    text = HTML_SPAN.sub(lambda m: m.group(2) if kind in m.group(1).split() else "", text)
    kept: list[str] = []
    block: list[str] | None = None  # the kinds of the open block
    for line in text.splitlines(keepends=True):
        if BLOCK_END.match(line):
            block = None
            continue
        start = BLOCK_START.match(line)
        if start:
            block = start.group(1).split()
            continue
        if block is not None and kind not in block:
            continue
        inline = INLINE.search(line)
        if inline and not line.lstrip().startswith(("#", "<!--")):
            if kind not in inline.group(1).split():
                continue
            line = line[:inline.start()] + "\n"
        kept.append(line)
    # Left-out blocks leave runs of blank lines: at most two in a row.
    return re.sub(r"\n{4,}", "\n\n\n", "".join(kept)).rstrip("\n") + "\n"


def rename(text: str, name: str) -> str:
    return text.replace("template", name).replace("Template", name.capitalize())


def new_plugin(template: Path, name: str, kind: str, directory: Path, taken: set[str] = frozenset()) -> Path:
    """Make ``directory/name`` from ``template`` for ``kind``; return where it is."""
    if not NAME.match(name):
        raise Refused(f"'{name}' cannot name a plugin: use 2-31 lowercase letters and digits, "
                      "starting with a letter (it names the package encompass_NAME)")
    if name == "template" or name in taken:
        raise Refused(f"a plugin named '{name}' exists already; pick another name")
    if kind not in KINDS:
        raise Refused(f"unknown kind '{kind}': use one of {', '.join(KINDS)}")
    target = directory.resolve() / name
    if target.exists():
        raise Refused(f"{target} exists already; remove it or pick another --dir")
    others = {path for other, paths in KIND_FILES.items() if other != kind for path in paths}
    made: list[Path] = []
    try:
        for source in sorted(template.rglob("*")):
            relative = source.relative_to(template)
            if source.is_dir() or SKIPPED & set(relative.parts) or relative.as_posix() in others:
                continue
            if any(part.endswith(".egg-info") for part in relative.parts):
                continue
            destination = target / rename(relative.as_posix(), name)
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_text(rename(keep_kind(source.read_text(), kind), name))
            shutil.copymode(source, destination)
            made.append(destination)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)  # nothing half-made is left
        raise
    return target
