"""Secrets of pools and platforms come from the environment or a 0600 file, never the config."""

from __future__ import annotations

import pytest

from encompass_core import config
from encompass_core.errors import ConfigError


def load(tmp_path, text: str) -> config.Config:
    path = tmp_path / "encompass.toml"
    path.write_text(text)
    return config.load(path)


def test_a_secret_is_read_from_the_environment(tmp_path, monkeypatch):
    loaded = load(tmp_path, '[platforms.chassis]\ndriver = "bladecenter"\ncommunity_env = "MM_COMMUNITY"\n')
    section = loaded.platform("chassis")
    monkeypatch.setenv("MM_COMMUNITY", "s3cret")
    assert config.secret(section, "community", loaded) == "s3cret"
    monkeypatch.delenv("MM_COMMUNITY")
    with pytest.raises(ConfigError, match=r"\$MM_COMMUNITY, which is not set"):
        config.secret(section, "community", loaded)


def test_a_secret_file_must_be_private(tmp_path):
    loaded = load(tmp_path, '[pools.san]\ndriver = "ds4xxx"\npassword_file = "san.pw"\n')
    secret_file = tmp_path / "san.pw"
    secret_file.write_text("pa55\n")
    secret_file.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        config.secret(loaded.pool("san"), "password", loaded)
    secret_file.chmod(0o600)
    assert config.secret(loaded.pool("san"), "password", loaded) == "pa55"


def test_a_secret_written_in_the_file_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="do not write the secret 'password'"):
        load(tmp_path, '[pools.san]\ndriver = "ds4xxx"\npassword = "pa55"\n')


def test_the_store_backend_is_tinydb_unless_the_file_says(tmp_path, monkeypatch):
    from encompass_core.store import open_store

    assert open_store(tmp_path, load(tmp_path, "")).backend == "tinydb"
    loaded = load(tmp_path, '[store]\nbackend = "postgresql"\ndsn_env = "ENCOMPASS_DSN"\n')
    assert loaded.store == {"backend": "postgresql", "dsn_env": "ENCOMPASS_DSN"}
    monkeypatch.setenv("ENCOMPASS_DSN", "postgresql://u:pw@127.0.0.1/db")
    assert config.store_dsn(loaded) == "postgresql://u:pw@127.0.0.1/db"


@pytest.mark.parametrize(("table", "message"), [
    ('backend = "sqlite"', "'backend' should be one of tinydb, postgresql"),
    ('backend = "tinydb"\ncache = 3', "unknown setting 'cache'"),
    ('backend = "postgresql://admin:hunter2@db/encompass"', "not shown"),
    ('backend = "postgresql"', "needs dsn_env"),
    ('backend = "postgresql"\ndsn_env = "A"\ndsn_file = "b"', "not both"),
])
def test_a_bad_store_table_is_refused(tmp_path, table, message):
    with pytest.raises(ConfigError, match=message):
        load(tmp_path, f"[store]\n{table}\n")


def test_a_dsn_written_in_the_file_is_refused_and_never_repeated(tmp_path):
    with pytest.raises(ConfigError, match="do not write the dsn") as refused:
        load(tmp_path, '[store]\nbackend = "postgresql"\ndsn = "postgresql://u:hunter2@h/db"\n')
    assert "hunter2" not in str(refused.value)
