"""The documentation site builds strictly, and its generated references say what the code says."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from encompass_core import docgen, lifecycle
from encompass_core.config import STORE_SETTINGS
from encompass_core.contracts import PlatformDriver, StorageDriver
from encompass_core.plugins import PluginHost

ROOT = Path(__file__).resolve().parents[2]
MKDOCS = str(Path(sys.executable).with_name("mkdocs"))


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run([MKDOCS, "build", "--strict", "--site-dir", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    return out


def _text(html: str) -> str:
    return re.sub(r"<[^>]+>", "", html)


def test_every_page_is_in_the_navigation_and_built(site):
    config = (ROOT / "mkdocs.yml").read_text()
    pages = sorted(p.name for p in (ROOT / "docs").glob("*.md"))
    for page in pages:
        assert f": {page}" in config, f"docs/{page} is not in mkdocs.yml's nav"
        built = site / ("index.html" if page == "index.md" else f"{page[:-3]}/index.html")
        assert built.is_file(), built


def test_no_marker_is_left_unexpanded(site):
    for html in site.rglob("*.html"):
        assert "generated:" not in html.read_text(), html


def test_configuration_reference_lists_every_installed_driver_and_setting(site):
    page = _text((site / "configuration" / "index.html").read_text())
    host = PluginHost().load()
    for name, record in {**host.storage_drivers(), **host.platform_drivers()}.items():
        assert f'driver = "{name}"' in page.replace("&quot;", '"'), name
        for setting in record.settings:
            key = f"{setting.name}_env" if setting.secret else setting.name
            assert key in page, f"{name}: {key}"
    for setting in STORE_SETTINGS:
        assert setting.name in page
    for name in host.customizers():
        assert name in page


def test_lifecycle_is_drawn_from_the_table(site):
    html = (site / "lifecycle" / "index.html").read_text()
    assert "<svg" in html
    for state in lifecycle.STATES:
        assert f">{state}<" in html, f"state {state} missing from the diagram"
    for op in lifecycle.OPERATIONS.values():
        assert f"<code>{op.name}</code>" in html


def test_contract_reference_has_every_method_with_its_docstring(site):
    page = _text((site / "contract" / "index.html").read_text())
    for cls in (StorageDriver, PlatformDriver):
        for name, member in cls.__dict__.items():
            if name.startswith("_") or not callable(getattr(member, "fget", member)):
                continue
            assert f"{name}(" in page or name == "kind", f"{cls.__name__}.{name}"
            doc = (getattr(member, "fget", member).__doc__ or "").split()
            words = [w for w in doc if w.isalpha()][:6]  # plain words: markup is rewritten
            assert words and all(w in page for w in words), f"{cls.__name__}.{name}: {words}"


def test_an_unknown_generated_section_is_an_error():
    with pytest.raises(KeyError, match="no generated section 'nope'"):
        docgen.expand("text\n<!-- generated: nope -->\n")


def test_a_broken_link_fails_the_strict_build(tmp_path):
    """The check itself can fail: a copy of the site with one bad link does not build."""
    copy = tmp_path / "site-source"
    copy.mkdir()
    subprocess.run(["cp", "-r", str(ROOT / "docs"), str(copy)], check=True)
    (copy / "mkdocs.yml").write_text((ROOT / "mkdocs.yml").read_text())
    page = copy / "docs" / "concepts.md"
    page.write_text(page.read_text() + "\nSee [nowhere](no-such-page.md).\n")
    done = subprocess.run([MKDOCS, "build", "--strict", "--site-dir", str(tmp_path / "out")],
                          cwd=copy, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode != 0
    assert "no-such-page.md" in done.stderr
