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
