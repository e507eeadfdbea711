from pathlib import Path

import pytest

from qontak import ConfigurationError, Qontak
from qontak._config import load_dotenv_values, resolve_base_url, resolve_settings


def test_arguments_win_over_environment_and_dotenv(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("QONTAK_CLIENT_ID=from-dotenv\nQONTAK_CLIENT_SECRET=dotenv-secret\n")
    env = {"QONTAK_CLIENT_ID": "from-env"}
    s = resolve_settings(env=env, env_file=env_file)
    assert s.client_id == "from-env"
    assert s.client_secret.get() == "dotenv-secret"
    s = resolve_settings("from-arg", "arg-secret", env=env, env_file=env_file)
    assert (s.client_id, s.client_secret.get()) == ("from-arg", "arg-secret")


def test_missing_credentials_name_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="QONTAK_CLIENT_ID"):
        resolve_settings(env={}, env_file=tmp_path / "none")
    with pytest.raises(ConfigurationError, match="QONTAK_CLIENT_SECRET"):
        resolve_settings(env={"QONTAK_CLIENT_ID": "x"}, env_file=tmp_path / "none")


def test_dotenv_parsing_handles_quotes_comments_and_export(tmp_path: Path) -> None:
    p = tmp_path / ".env"
    p.write_text(
        "# comment\nexport A=1\nB='two words'\nC=\"q\"\nD=plain # trailing\n\nnot a line\n"
    )
    assert load_dotenv_values(p) == {"A": "1", "B": "two words", "C": "q", "D": "plain"}


def test_base_url_environments_and_prefix() -> None:
    assert resolve_base_url() == "https://api.mekari.com/qontak/chat/v1"
    assert resolve_base_url(environment="staging") == "https://api.mekari.io/qontak/chat/v1"
    assert resolve_base_url(environment="sandbox") == "http://127.0.0.1:8765/qontak/chat/v1"
    assert resolve_base_url("http://localhost:9/custom/") == "http://localhost:9/custom"
    with pytest.raises(ConfigurationError, match="environment"):
        resolve_base_url(environment="prod")
    with pytest.raises(ConfigurationError, match="base_url"):
        resolve_base_url("ftp://x")


def test_base_url_from_environment_variable(tmp_path: Path) -> None:
    s = resolve_settings(
        env={
            "QONTAK_CLIENT_ID": "a",
            "QONTAK_CLIENT_SECRET": "b",
            "QONTAK_BASE_URL": "http://127.0.0.1:1234",
        },
        env_file=None,
    )
    assert s.base_url == "http://127.0.0.1:1234/qontak/chat/v1"


def test_repr_of_client_and_settings_never_show_the_secret() -> None:
    client = Qontak("visible-id", "hidden-secret-value", env_file=None)
    try:
        for text in (repr(client), str(client), repr(client.settings), str(client.settings)):
            assert "hidden-secret-value" not in text
        assert "visible-id" in repr(client)
    finally:
        client.close()
