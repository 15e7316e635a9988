"""Many clones at once: 20 qcow2 clones customized in parallel; one failing does not stop the rest."""

from __future__ import annotations

import subprocess


def make_master(run_cli, tmp_path) -> None:
    tree = tmp_path / "tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc" / "hostname").write_text("master\n")
    (tree / "etc" / "hosts").write_text("127.0.1.1\tmaster\n")
    raw = tmp_path / "disk.raw"
    subprocess.run(["mke2fs", "-q", "-t", "ext4", "-d", str(tree), str(raw), "32M"], check=True)
    qcow2 = tmp_path / "disk.qcow2"
    subprocess.run(["qemu-img", "convert", "-O", "qcow2", str(raw), str(qcow2)], check=True)
    assert run_cli("master", "import", "base", qcow2).code == 0
    assert run_cli("master", "items", "add", "base", "hostname", "--type", "file",
                   "--path", "/etc/hostname").code == 0
    assert run_cli("master", "items", "add", "base", "hosts", "--type", "regexp", "--path", "/etc/hosts",
                   "--param", r"pattern=^127\.0\.1\.1\s.*$", "--param", r"replacement=127.0.1.1\t{value}",
                   ).code == 0


def test_twenty_clones_in_parallel(run_cli, tmp_path):
    make_master(run_cli, tmp_path)
    assert run_cli("clone", "base", "--count", "20", "--prefix", "node").code == 0
    result = run_cli("customize", "--master", "base", "--set", "hostname={clone}", "--set", "hosts={clone}",
                     "--parallel", "4", "--json")
    assert result.code == 0, result.err
    rows = result.json()
    assert [r["name"] for r in rows] == [f"node{i}" for i in range(1, 21)]
    assert all(r["state"] == "ready" and r["applied"] == ["hostname", "hosts"] for r in rows)
    for i in (1, 7, 20):
        assert run_cli("image", "cat", f"node{i}", "/etc/hostname").out == f"node{i}\n"
        assert run_cli("image", "cat", f"node{i}", "/etc/hosts").out == f"127.0.1.1\tnode{i}\n"
    states = {r["name"]: r["state"] for r in run_cli("image", "list", "--json").json()}
    assert set(states.values()) == {"ready"}
    result = run_cli("uncustomize", "--master", "base", "--parallel", "4")
    assert result.code == 0, result.err
    assert run_cli("image", "cat", "node13", "/etc/hostname").out == "master\n"


def test_one_failing_clone_does_not_stop_the_others(run_cli, tmp_path):
    make_master(run_cli, tmp_path)
    assert run_cli("clone", "base", "a1", "a2", "a3").code == 0
    assert run_cli("image", "disable", "a2").code == 0
    result = run_cli("customize", "a1", "a2", "a3", "--set", "hostname={clone}", "--set", "hosts=x")
    assert result.code == 4  # the one failure's own exit code: a conflict (state)
    assert "2 of 3 clone(s) applied, 1 failed" in result.err
    assert "a2: cannot customize clone 'a2': it is disabled" in result.err
    assert run_cli("image", "cat", "a3", "/etc/hostname").out == "a3\n"
    assert run_cli("image", "cat", "a2", "/etc/hostname").out == "master\n"


def test_re_customizing_many_clones_opens_the_master_once(run_cli, tmp_path, encompass_home,
                                                          monkeypatch):
    """Each clone's old hostname is reverted from the master's file: the master's volume is
    opened once, read-only, for all of them, and closed (its helpers gone) at the end."""
    from encompass_core import rundir
    from encompass_core.context import Context
    from encompass_core.operations import customize, shared_reads

    make_master(run_cli, tmp_path)
    names = [f"node{i}" for i in range(1, 7)]
    assert run_cli("clone", "base", "--count", "6", "--prefix", "node").code == 0
    assert run_cli("customize", "--master", "base", "--set", "hostname=first-{clone}",
                   "--set", "hosts=h").code == 0
    opened = []
    real_open = shared_reads.open_image_volume
    monkeypatch.setattr(shared_reads, "open_image_volume",
                        lambda ctx, image, *args, **kw: opened.append(image.name)
                        or real_open(ctx, image, *args, **kw))
    ctx = Context(home=encompass_home)
    # The run directory is this process's: other tests in it may have left their own records.
    helpers = rundir.current() / "helpers"
    before = set(helpers.iterdir())

    results = customize.customize_images(ctx, names, {n: {"hostname": f"second-{n}"} for n in names},
                                         parallel=3)

    assert [(r.name, r.state, r.applied, r.error) for r in results] == [
        (n, "ready", ("hostname",), None) for n in names]
    assert opened == ["base"]  # six reverts, one opening of the master
    assert set(helpers.iterdir()) - before == set()  # its daemon and debugfs ended
    for name in names:
        assert run_cli("image", "cat", name, "/etc/hostname").out == f"second-{name}\n"
    uncustomized = customize.uncustomize_images(ctx, names[:2], parallel=2)
    assert [r.state for r in uncustomized] == ["ready", "ready"]
    assert opened == ["base", "base"]
    assert run_cli("image", "cat", "node2", "/etc/hostname").out == "master\n"
