"""Repair: an image whose operation died is found and moved to 'error'; live holders are left alone."""

from __future__ import annotations

import subprocess
import sys

from conftest import cli_env, image_records

# Take the lock of an image for a flatten, as a real operation does, then vanish without
# finishing: what a crash, a kill -9 or a power cut leaves behind.
CRASH = """
import os, sys
from encompass_core.context import Context
from encompass_core.operations import holding
holding.start(Context(), sys.argv[1], "flatten")
os._exit(0)
"""

# Hold the lock until stdin closes, then finish properly.
HOLD = """
import sys
from encompass_core.context import Context
from encompass_core.operations import holding
ctx = Context()
held = holding.start(ctx, sys.argv[1], "flatten")
print("held", flush=True)
sys.stdin.read()
holding.finish(ctx, held)
"""


def test_an_image_whose_operation_died_is_repaired(run_cli, master, encompass_home) -> None:
    assert run_cli("clone", master, "web01").code == 0
    crashed = subprocess.Popen([sys.executable, "-c", CRASH, "web01"], env=cli_env(encompass_home))
    assert crashed.wait() == 0
    assert image_records(run_cli)["web01"]["state"] == "cloning"
    refused = run_cli("image", "delete", "web01")
    assert refused.code == 4 and "busy (cloning)" in refused.err and "encompass repair" in refused.err

    dry = run_cli("repair", "--dry-run", "--json")
    assert dry.code == 0, dry.err
    [stuck] = dry.json()["images"]
    assert (stuck["name"], stuck["owner"], stuck["pid"], stuck["operation"]) == (
        "web01", "gone", crashed.pid, "flatten")
    assert image_records(run_cli)["web01"]["state"] == "cloning"  # a dry run changes nothing

    repaired = run_cli("repair")
    assert repaired.code == 0, repaired.err
    web01 = image_records(run_cli)["web01"]
    assert web01["state"] == "error"
    assert f"process {crashed.pid}" in web01["error"] and "died" in web01["error"]
    assert run_cli("repair", "--json").json() == {"images": [], "removals": [], "claims": [], "leftovers": []}

    deleted = run_cli("image", "delete", "web01")  # what a user does next
    assert deleted.code == 0, deleted.err


def test_an_image_held_by_a_live_process_is_left_alone(run_cli, master, encompass_home) -> None:
    assert run_cli("clone", master, "web01").code == 0
    holder = subprocess.Popen([sys.executable, "-c", HOLD, "web01"], env=cli_env(encompass_home),
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"

        result = run_cli("repair", "--json")

        assert result.code == 0, result.err
        [stuck] = result.json()["images"]
        assert (stuck["name"], stuck["owner"], stuck["pid"]) == ("web01", "alive", holder.pid)
        assert "left alone" in stuck["action"]
        assert image_records(run_cli)["web01"]["state"] == "cloning"
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert holder.returncode == 0
    assert image_records(run_cli)["web01"]["state"] == "ready"
