from pathlib import Path

import pytest

from qontak import ConfigurationError, Qontak, QontakClient
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


# --- Every setting is checked where it enters, and named by where it came from ------------------

PASSWORD = "pw-7f3a9c1e-hunter2"


@pytest.mark.parametrize(
    "url",
    [
        f"http://user:{PASSWORD}@127.0.0.1:8765",
        f"https://{PASSWORD}@api.mekari.com",
        f"https://user:{PASSWORD}@api.mekari.com/qontak/chat/v1",
        f"ftp://user:{PASSWORD}@host",  # refused for the password before the scheme is read
        f"user:{PASSWORD}@host",
    ],
)
def test_base_url_with_credentials_is_refused_without_printing_them(
    url: str, tmp_path: Path
) -> None:
    # httpx would turn userinfo into Basic auth replacing the HMAC header; and doctor printed it.
    cases = [
        (lambda: Qontak("a", "b", base_url=url, env_file=None), "base_url"),
        (lambda: QontakClient("a", "b", base_url=url, env_file=None), "base_url"),
        (
            lambda: resolve_settings("a", "b", env={"QONTAK_BASE_URL": url}, env_file=None),
            "QONTAK_BASE_URL",
        ),
    ]
    dotenv = tmp_path / ".env"
    dotenv.write_text(f"QONTAK_BASE_URL={url}\n")
    cases.append((lambda: resolve_settings("a", "b", env={}, env_file=dotenv), "QONTAK_BASE_URL"))
    for make, setting in cases:
        with pytest.raises(ConfigurationError) as info:
            make()
        assert info.value.setting == setting
        assert PASSWORD not in str(info.value) and PASSWORD not in repr(info.value.__dict__)
        if "@" in url.split("//")[-1].split("/")[0] and url.startswith("http"):
            assert "user name or password" in info.value.reason


def test_url_in_the_path_is_not_mistaken_for_credentials() -> None:
    assert resolve_base_url("https://h/a@b") == "https://h/a@b"


@pytest.mark.parametrize(
    ("kwargs", "setting"),
    [
        ({"client_id": 5}, "client_id"),
        ({"client_secret": 5}, "client_secret"),
        ({"client_secret": b"bytes"}, "client_secret"),
        ({"client_secret": "a\ud800b"}, "client_secret"),
        ({"client_secret": "a\x00b"}, "client_secret"),
        ({"client_id": 'a"b'}, "client_id"),  # would break username="…" in the header
        ({"client_id": "café"}, "client_id"),  # a header is ASCII
        ({"base_url": 5}, "base_url"),
        ({"base_url": "http://h\x00ost"}, "base_url"),
        ({"base_url": "http://h:99999"}, "base_url"),
        ({"base_url": "http://[::1"}, "base_url"),
        ({"base_url": "https://"}, "base_url"),
        ({"base_url": "http://h/?x=1"}, "base_url"),
        ({"environment": 5}, "environment"),
        ({"environment": "prod"}, "environment"),
        ({"env_file": 5}, "env_file"),
        ({"env_file": "a\x00b"}, "env_file"),
    ],
)
def test_bad_settings_name_the_argument(kwargs: dict[str, object], setting: str) -> None:
    options: dict[str, object] = {"client_id": "a", "client_secret": "b", "env_file": None}
    options.update(kwargs)
    with pytest.raises(ConfigurationError) as info:
        Qontak(**options)  # type: ignore[arg-type]
    assert info.value.setting == setting
    assert str(info.value).startswith(f"{setting}: ")


def test_bad_environment_values_name_the_variable() -> None:
    # os.environ holds undecodable bytes as lone surrogates (surrogateescape).
    env = {"QONTAK_CLIENT_ID": "a", "QONTAK_CLIENT_SECRET": "s\udcff"}
    with pytest.raises(ConfigurationError) as info:
        resolve_settings(env=env, env_file=None)
    assert info.value.setting == "QONTAK_CLIENT_SECRET"
    env = {"QONTAK_CLIENT_ID": "a b", "QONTAK_CLIENT_SECRET": "s"}
    with pytest.raises(ConfigurationError) as info:
        resolve_settings(env=env, env_file=None)
    assert info.value.setting == "QONTAK_CLIENT_ID"
    env = {"QONTAK_CLIENT_ID": "a", "QONTAK_CLIENT_SECRET": "s", "QONTAK_ENV": "prod"}
    with pytest.raises(ConfigurationError) as info:
        resolve_settings(env=env, env_file=None)
    assert info.value.setting == "QONTAK_ENV"


def test_missing_credentials_carry_the_setting() -> None:
    with pytest.raises(ConfigurationError) as info:
        resolve_settings(env={}, env_file=None)
    assert (info.value.setting, info.value.reason) == ("client_id", "missing")


def test_dotenv_that_is_not_text_is_a_configuration_error(tmp_path: Path) -> None:
    p = tmp_path / ".env"
    p.write_bytes(b"QONTAK_CLIENT_ID=\xff\xfe\n")
    with pytest.raises(ConfigurationError) as info:
        resolve_settings(env={}, env_file=p)
    assert info.value.setting == "env_file" and "UTF-8" in str(info.value)


def test_empty_environment_argument_still_reads_qontak_env() -> None:
    env = {"QONTAK_CLIENT_ID": "a", "QONTAK_CLIENT_SECRET": "s", "QONTAK_ENV": "staging"}
    assert resolve_settings(environment="", env=env, env_file=None).base_url.startswith(
        "https://api.mekari.io"
    )
