"""migrate, reassign, swap and machine resize refuse bad requests in one line, before anything
is touched (the moves themselves are tested against libvirt, in its plugin)."""

from __future__ import annotations

from test_claims import put_machine

from conftest import assert_one_line_error
from encompass_core.model import Machine


def test_moves_refuse_in_one_line_and_change_nothing(run_cli, master, encompass_home):
    assert run_cli("clone", master, "web01").code == 0
    put_machine(encompass_home, Machine(name="vm1", platform="gone", power="off"))
    put_machine(encompass_home, Machine(name="vm2", platform="gone", power="off"))

    cases = [
        (("migrate", "web01", "vm1"), 4, ("not deployed", "encompass deploy web01 vm1")),
        (("migrate", "web01", "--host", "h2"), 4, ("cannot migrate clone 'web01': it is not deployed",)),
        (("migrate", "ghost", "vm1"), 3, ("ghost",)),
        (("reassign", "nowhere", "web01"), 3, ("no machine named 'nowhere'",)),
        (("swap", "vm1", "vm1"), 2, ("two different machines",)),
        (("swap", "vm1", "vm2"), 4, ("run nothing: nothing to swap",)),
        (("machine", "resize", "vm1"), 2, ("--memory SIZE and/or --cpus N",)),
        (("machine", "resize", "vm1", "--memory", "lots"), 2, ("memory 'lots'",)),
        (("machine", "resize", "vm1", "--cpus", "2"), 3, ("no platform named 'gone'",)),
    ]
    for args, code, words in cases:
        result = run_cli(*args)
        assert result.code == code, (args, result)
        assert_one_line_error(result, *words)
    usage = run_cli("migrate", "web01")
    assert usage.code == 2 and "MACHINE (or --host HOST)" in usage.err
    shown = run_cli("image", "show", "web01", "--json").json()
    assert (shown["state"], shown["machine"]) == ("ready", None)
    assert "--param on=hardware" in run_cli("migrate", "--help").out
