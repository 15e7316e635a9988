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
