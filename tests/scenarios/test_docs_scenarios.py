"""docs/scenarios.md runs as written: every ``sh`` block, in order, in one shell.

A line ending in ``# refused`` must fail with one line on stderr; every other command must
succeed. The page's repository path is replaced by a private one.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from encompass_core.context import Context
from encompass_core.testing.demo import cached_demo_master

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "scenarios.md"
PAGE_HOME = "/var/tmp/encompass-walk"
BLOCK = re.compile(r"^```sh\n(.*?)^```$", re.MULTILINE | re.DOTALL)
REFUSED = re.compile(r"^(.*?)\s+#\s*refused\s*$")


def script_of(markdown: str, home: Path) -> str:
    """The page's commands as one bash script that stops at the first surprise."""
    # Each refusal's message goes to a file of its own, removed however the script ends.
    lines = ["set -u", "refused=$(mktemp)", "trap 'rm -f \"$refused\"' EXIT"]
    for number, block in enumerate(BLOCK.findall(markdown), 1):
        for line in block.replace(PAGE_HOME, str(home)).splitlines():
            command = line.split("  #", 1)[0].strip() if not REFUSED.match(line) else line
            if not command or command.startswith("#"):
                continue
            refused = REFUSED.match(command)
            quoted = command.replace("'", "'\\''")
            lines.append(f"echo '$ {quoted}'")
            if refused:
                lines.append(f"if {refused.group(1)} 2>\"$refused\"; then "
                             f"echo 'block {number}: not refused: {quoted}' >&2; exit 97; fi")
                lines.append(f"cat \"$refused\"; [ \"$(wc -l <\"$refused\")\" -eq 1 ] || "
                             f"{{ echo 'block {number}: refusal is not one line' >&2; exit 98; }}")
            else:
                lines.append(f"{command} || {{ echo 'block {number} failed: {quoted}' >&2; exit 99; }}")
    return "\n".join(lines) + "\n"


def test_the_page_has_commands_and_refusals():
    script = script_of(PAGE.read_text(), Path("/x"))
    assert script.count("exit 99") >= 20
    assert script.count("exit 97") >= 2


def test_a_failing_command_fails_the_script(tmp_path):
    """The harness itself can fail: a command that fails, and a refusal that succeeds; either
    way, it leaves no file behind."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    for text in ("```sh\nfalse\n```\n", "```sh\ntrue   # refused\n```\n"):
        done = subprocess.run(["bash", "-c", script_of(text, tmp_path)], capture_output=True,
                              text=True, check=False, env={**os.environ, "TMPDIR": str(scratch)})
        assert done.returncode in (97, 99), done
        assert list(scratch.iterdir()) == []


@pytest.fixture
def walk(tmp_path):
    """A working folder holding demo-disk.img, and a repository under /var/tmp (the private
    libvirt daemon's user must reach it); the daemon and the repository go away after."""
    home = Path("/var/tmp") / f"encompass-walk-test-{os.getpid()}"
    shutil.rmtree(home, ignore_errors=True)
    (tmp_path / "demo-disk.img").symlink_to(cached_demo_master().disk)
    yield tmp_path, home
    if (home / "encompass.toml").is_file():
        ctx = Context(home=home)
        if "kvm" in ctx.config.platforms:
            ctx.platform("kvm").driver.shutdown()
    shutil.rmtree(home, ignore_errors=True)


@pytest.mark.slow
def test_scenarios_page_runs_as_written(walk):
    folder, home = walk
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    env.pop("ENCOMPASS_HOME", None)
    done = subprocess.run(["bash", "-c", script_of(PAGE.read_text(), home)], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # What a reader is told to expect, checked in the output.
    assert "web2\n" in done.stdout  # web2's hostname, read back from inside it
    assert "master\n" in done.stdout  # web3 un-customized to the default
    assert re.search(r"^web1\s+kvm\s+virtual\s+on\b", done.stdout, re.MULTILINE)  # machine list
    assert "state          deployed" in done.stdout  # image show web1
    assert "'web1' deployed on machine 'web1'" in done.stderr
    assert done.stderr.rstrip().endswith("no images yet: encompass master import NAME "
                                         "DISK_IMAGE_OR_DIRECTORY")
