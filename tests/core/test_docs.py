"""The hook reference documents every hook with its exact signature, and each is exercised."""

import inspect
import re
from pathlib import Path

from encompass_core import hookspecs

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


def test_every_hook_is_used_by_the_code_or_its_tests():
    files = [*(ROOT / "encompass_core").rglob("*.py"), *(ROOT / "plugins").rglob("*.py"),
             *(ROOT / "tests").rglob("*.py")]
    sources = "\n".join(p.read_text() for p in files if p.name not in ("hookspecs.py", "test_docs.py"))
    for name in HOOKS:
        used = re.search(rf"def {name}\(|hook\.{name}\b|\"{name}\"", sources)
        assert used, f"{name} is declared but never implemented or called"
