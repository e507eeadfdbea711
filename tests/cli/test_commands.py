"""Every command through typer's runner against a real sandbox on loopback: tables hold the
data, ``--json`` parses back into the SDK's models, and failures map to the documented exit
codes with one line on stderr."""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from qontak import Broadcast, BroadcastLogEntry, Channel, DirectMessage, Template
from qontak.cli import ExitCode
from qontak.cli._output import log_table
from qontak.cli.demo import sample_png
from qontak.sandbox import FaultConfig, RateLimitConfig, Sandbox
from tests.cli.conftest import Cli, Served

CHANNEL_ID = "56b60c3c-0123-46af-958b-32f3ad12ee37"
OTP_ID_ID = "60cccaa0-ccd9-4efd-bdfb-875859c4b50a"
ORDER_ID = "d3e1083c-66ea-410b-b807-1d84182ffa82"


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in stderr
    return lines[0]


# --- channels and templates --------------------------------------------------------------------


def test_channels_table_lists_the_sandbox_channel(cli: Cli) -> None:
    result = cli("channels")
    assert result.exit_code == 0
    for text in (CHANNEL_ID, "+6281234500000", "Qontak Sandbox", "wa_cloud", "yes"):
        assert text in result.stdout


def test_channels_json_parses_into_channel_models(cli: Cli) -> None:
    channels = [Channel.model_validate(c) for c in cli.json("channels")]
    assert [c.id for c in channels] == [CHANNEL_ID]
    assert channels[0].phone_number == "+6281234500000"


def test_global_options_work_before_or_after_the_command(cli: Cli) -> None:
    before = cli("--json", "channels")
    after = cli("channels", "--json")
    assert json.loads(before.stdout) == json.loads(after.stdout)


def test_templates_table_and_filters(cli: Cli) -> None:
    result = cli("templates")
    assert result.exit_code == 0
    for name in ("login_otp", "order_update", "promo_image", "cta_phone", ORDER_ID):
        assert name in result.stdout
    pending = cli("templates", "--status", "PENDING")
    assert "pending_promo" in pending.stdout and "login_otp" not in pending.stdout
    auth = [
        Template.model_validate(t) for t in cli.json("templates", "--category", "AUTHENTICATION")
    ]
    assert {t.name for t in auth} == {"login_otp"}
    english = [Template.model_validate(t) for t in cli.json("templates", "--language", "en")]
    assert english and all(t.language == "en" for t in english)
    found = [Template.model_validate(t) for t in cli.json("templates", "--search", "video")]
    assert {t.name for t in found} == {"product_video"}


def test_templates_show_marks_placeholders_and_json_is_a_template(cli: Cli) -> None:
    result = cli("templates", "show", "order_update", "--language", "id")
    assert result.exit_code == 0
    assert "⟨{{1}}⟩" in result.stdout and "⟨{{2}}⟩" in result.stdout
    assert ORDER_ID in result.stdout
    by_id = Template.model_validate(cli.json("templates", "show", OTP_ID_ID))
    assert by_id.name == "login_otp" and by_id.language == "id"


def test_templates_show_and_list_take_dash_l_like_send(cli: Cli) -> None:
    shown = Template.model_validate(cli.json("templates", "show", "login_otp", "-l", "en"))
    assert shown.name == "login_otp" and shown.language == "en"
    listed = [Template.model_validate(t) for t in cli.json("templates", "-l", "en")]
    assert listed and all(t.language == "en" for t in listed)


def test_templates_show_says_the_otp_code_also_fills_the_copy_code_button(
    cli: Cli, served: Served
) -> None:
    result = cli("templates", "show", "login_otp", "-l", "id")
    assert result.exit_code == 0
    [hint] = [line for line in result.stdout.splitlines() if line.startswith("to fill:")]
    assert hint == "to fill: body {{1}} (--var 1=CODE; also fills the copy-code button)"
    # The hint is what send really does: --var 1 alone fills body and button with the code.
    sent = cli("send", "--to", "0812-3456-7890", "-t", "login_otp", "-l", "id", "--var", "1=482913")
    assert sent.exit_code == 0, sent.stderr
    [message] = served.sandbox.messages()
    assert message["parameters"]["buttons"] == [{"index": "0", "type": "url", "value": "482913"}]
    assert [b["value_text"] for b in message["parameters"]["body"]] == ["482913"]
    # A template whose dynamic button really needs --button still asks for it.
    cta = cli("templates", "show", "cta_url", "-l", "en")
    assert "to fill: button 0 (--button 0=VALUE)" in cta.stdout


def test_templates_show_ambiguous_name_asks_for_language(cli: Cli) -> None:
    result = cli("templates", "show", "login_otp")
    assert result.exit_code == ExitCode.USAGE
    assert "--language" in _one_error_line(result.stderr)


def test_templates_show_unknown_template_is_a_usage_error(cli: Cli) -> None:
    result = cli("templates", "show", "no_such_template")
    assert result.exit_code == ExitCode.USAGE
    assert "no_such_template" in _one_error_line(result.stderr)


# --- send, preview, dry run --------------------------------------------------------------------


def test_send_sends_one_message_and_json_parses(cli: Cli, served: Served) -> None:
    out = cli.json(
        "send",
        "--to",
        "0812-3456-7890",
        "--name",
        "Budi",
        "--template",
        "order_update",
        "--language",
        "id",
        "--var",
        "1=Budi",
        "--var",
        "2=Sepatu",
    )
    broadcast = Broadcast.model_validate(out["broadcast"])
    message = DirectMessage.model_validate(out["message"])
    assert message.to_number == "6281234567890"
    assert message.body_values == {"1": "Budi", "2": "Sepatu"}
    truth = served.sandbox.messages()
    assert len(truth) == 1
    assert truth[0]["broadcast_id"] == broadcast.id
    assert truth[0]["to_number"] == "6281234567890"
    assert truth[0]["template"]["id"] == ORDER_ID


def test_send_table_output_shows_the_bubble_and_broadcast_id(cli: Cli, served: Served) -> None:
    result = cli(
        "send", "--to", "081234567890", "-t", "cta_url", "-l", "en", "--button", "0=fitur/report"
    )
    assert result.exit_code == 0, result.stderr
    assert "https://qontak.com/fitur/report" in result.stdout
    [sent] = served.sandbox.messages()
    assert sent["broadcast_id"] in result.stdout


def test_send_otp_fills_body_and_copy_code_button(cli: Cli, served: Served) -> None:
    out = cli.json("send", "--to", "081234567890", "-t", OTP_ID_ID, "--var", "1=123456")
    params = out["message"]["parameters"]
    assert params["buttons"] == [{"index": "0", "type": "url", "value": "123456"}]
    assert params["body"] == [{"key": "1", "value_text": "123456", "value": "otp"}]
    assert len(served.sandbox.messages()) == 1


def test_send_wait_follows_the_log_until_read(cli: Cli) -> None:
    out = cli.json(
        "send",
        "--to",
        "081234567890",
        "-t",
        "welcome_message",
        "-l",
        "id",
        "--wait",
        "--interval",
        "0.05",
    )
    rows = [BroadcastLogEntry.model_validate(r) for r in out["log"]]
    assert out["final"] is True
    assert [r.status for r in rows] == ["read"]


def test_send_wait_reports_a_failed_delivery_with_exit_1(cli: Cli) -> None:
    result = cli(
        "send",
        "--to",
        "6281234131026",
        "-t",
        "welcome_message",
        "-l",
        "id",
        "--wait",
        "--interval",
        "0.05",
    )
    assert result.exit_code == ExitCode.API_ERROR
    assert "Unable to deliver message" in result.stdout
    assert "delivery failed" in _one_error_line(result.stderr)


def test_dry_run_prints_preview_and_json_and_sends_nothing(cli: Cli, served: Served) -> None:
    result = cli(
        "send",
        "--dry-run",
        "--to",
        "081234567890",
        "-t",
        "order_update",
        "-l",
        "id",
        "-v",
        "1=Budi",
        "-v",
        "2=Sepatu",
    )
    assert result.exit_code == 0, result.stderr
    assert "Halo Budi, pesanan Anda untuk Sepatu" in result.stdout
    assert '"message_template_id": "d3e1083c-66ea-410b-b807-1d84182ffa82"' in result.stdout
    out = cli.json(
        "send",
        "--dry-run",
        "--to",
        "081234567890",
        "-t",
        "order_update",
        "-l",
        "id",
        "-v",
        "1=Budi",
        "-v",
        "2=Sepatu",
    )
    assert out["dry_run"] is True and out["problems"] == []
    assert DirectMessage.model_validate(out["message"]).body_values == {"1": "Budi", "2": "Sepatu"}
    assert served.sandbox.messages() == []


def test_dry_run_with_a_local_file_uploads_nothing(
    cli: Cli, served: Served, tmp_path: Path
) -> None:
    pdf = tmp_path / "invoice.pdf"
    pdf.write_bytes(b"%PDF-1.4 test")
    out = cli.json(
        "send",
        "--dry-run",
        "--to",
        "081234567890",
        "-t",
        "invoice_document",
        "-l",
        "id",
        "--header-document",
        str(pdf),
    )
    header = out["message"]["parameters"]["header"]
    assert header["params"][0]["value"].startswith("file://")
    assert served.sandbox.messages() == []


def test_send_uploads_a_local_header_file_first(cli: Cli, served: Served, tmp_path: Path) -> None:
    pdf = tmp_path / "invoice.pdf"
    pdf.write_bytes(b"%PDF-1.4 test")
    out = cli.json(
        "send",
        "--to",
        "081234567890",
        "-t",
        "invoice_document",
        "-l",
        "id",
        "--header-document",
        str(pdf),
    )
    header = out["message"]["parameters"]["header"]
    url = header["params"][0]["value"]
    assert url.startswith(served.url + "/_sandbox/files/") and url.endswith("/invoice.pdf")
    assert header["params"][1] == {"key": "filename", "value": "invoice.pdf"}
    assert len(served.sandbox.messages()) == 1


def _count_uploads(served: Served, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the name of every file the sandbox stores from ``POST /file_uploader`` (a spy
    around its store; the sandbox itself is not changed)."""
    names: list[str] = []
    store = served.sandbox.store
    original = store.add_upload

    def spy(upload: Any, created_at: float) -> None:
        names.append(upload.filename)
        original(upload, created_at)

    monkeypatch.setattr(store, "add_upload", spy)
    return names


def test_send_invalid_message_with_a_local_file_uploads_nothing(
    cli: Cli, served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uploads = _count_uploads(served, monkeypatch)
    png = tmp_path / "promo.png"
    png.write_bytes(sample_png())
    # promo_image has no body variables, so --var 1=… is a validation problem.
    args = ["--to", "081234567890", "-t", "promo_image", "-l", "id", "--header-image", str(png)]
    result = cli("send", *args, "--var", "1=Budi")
    assert result.exit_code == ExitCode.USAGE
    _one_error_line(result.stderr)
    assert uploads == []  # validated before the upload: exit 2 really means nothing sent
    assert served.sandbox.messages() == []
    # The same message without the problem uploads once, then sends.
    out = cli.json("send", *args)
    assert uploads == ["promo.png"]
    assert out["message"]["parameters"]["header"]["params"][0]["value"].startswith(served.url)
    assert len(served.sandbox.messages()) == 1


def test_dry_run_labels_the_local_file_url_as_a_placeholder(
    cli: Cli, served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uploads = _count_uploads(served, monkeypatch)
    pdf = tmp_path / "invoice.pdf"
    pdf.write_bytes(b"%PDF-1.4 test")
    args = ["send", "--dry-run", "--to", "081234567890", "-t", "invoice_document", "-l", "id",
            "--header-document", str(pdf)]  # fmt: skip
    result = cli(*args)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("JSON POST"))
    note = lines[start + 1]
    assert "local file" in note and "uploaded on send" in note and "placeholder" in note
    # What follows the note is the exact JSON, still valid JSON.
    message = json.loads("\n".join(lines[start + 2 :]))
    assert message["parameters"]["header"]["params"][0]["value"].startswith("file://")
    out = cli.json(*args)
    placeholder = out["message"]["parameters"]["header"]["params"][0]["value"]
    assert out["upload"] == {"file": str(pdf), "placeholder_url": placeholder}
    assert uploads == [] and served.sandbox.messages() == []


def test_send_payload_accepts_the_node_readme_dict(
    cli: Cli, served: Served, tmp_path: Path
) -> None:
    payload = {
        "to_name": "Test User",
        "to_number": "6281234567890",
        "message_template_id": ORDER_ID,
        "channel_integration_id": CHANNEL_ID,
        "language": {"code": "id"},
        "parameters": {
            "buttons": [],
            "body": [
                {"key": "1", "value_text": "Test User", "value": "name"},
                {"key": "2", "value_text": "Sepatu", "value": "product"},
            ],
        },
    }
    path = tmp_path / "payload.json"
    path.write_text(json.dumps(payload))
    out = cli.json("send", "--payload", f"@{path}")
    assert out["message"] == payload
    assert len(served.sandbox.messages()) == 1


def test_send_invalid_message_exits_2_and_sends_nothing(cli: Cli, served: Served) -> None:
    result = cli("send", "--to", "081234567890", "-t", "order_update", "-l", "id", "-v", "1=Budi")
    assert result.exit_code == ExitCode.USAGE
    assert "{{2}}" in _one_error_line(result.stderr)
    assert served.sandbox.messages() == []


def test_send_bad_number_exits_2(cli: Cli, served: Served) -> None:
    result = cli("send", "--to", "12", "-t", "welcome_message", "-l", "id")
    assert result.exit_code == ExitCode.USAGE
    assert "to_number" in _one_error_line(result.stderr)
    assert served.sandbox.messages() == []


def test_preview_shows_header_body_footer_and_buttons(cli: Cli, served: Served) -> None:
    result = cli(
        "preview",
        "-t",
        "product_video",
        "-l",
        "id",
        "--header-video",
        "https://cdn.example.com/v/clip.mp4",
        "-v",
        "1=Budi",
        "-v",
        "2=Qontak",
        "-v",
        "3=Mekari",
    )
    assert result.exit_code == 0, result.stderr
    for text in ("VIDEO", "clip.mp4", "Halo Budi", "Qontak", "[ Tertarik ]", "[ Tidak tertarik ]"):
        assert text in result.stdout
    otp = cli.json("preview", "-t", "login_otp", "-l", "id", "-v", "1=654321")
    assert "654321" in otp["preview"] and otp["problems"] == []
    Template.model_validate(otp["template"])
    missing = cli.json("preview", "-t", "promo_image", "-l", "id")
    assert any("header" in p for p in missing["problems"])
    assert served.sandbox.messages() == []


# --- log and broadcasts ------------------------------------------------------------------------


def _send(cli: Cli, number: str = "081234567890") -> str:
    out = cli.json("send", "--to", number, "-t", "welcome_message", "-l", "id")
    return str(out["broadcast"]["id"])


def test_log_table_and_json(cli: Cli) -> None:
    broadcast_id = _send(cli)
    result = cli("log", broadcast_id)
    assert result.exit_code == 0
    assert "6281234567890" in result.stdout
    rows = [
        BroadcastLogEntry.model_validate(r)
        for r in cli.json("log", broadcast_id, "--watch", "--interval", "0.05")
    ]
    assert [r.status for r in rows] == ["read"]


@pytest.fixture
def clocked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    """A sandbox of its own whose clock stands still until the test moves it, with one
    second between statuses, so a watcher sees each status in turn, whatever the machine's
    speed."""
    frozen = time.time()
    sandbox = Sandbox(
        delivery_delays=(1.0, 2.0, 3.0),
        faults=FaultConfig(),
        rate_limits=RateLimitConfig(enabled=False),  # the frozen clock never opens a new window
        clock=lambda: frozen,
    )
    monkeypatch.chdir(tmp_path)
    with sandbox.run_in_thread() as url:
        yield Served(sandbox, url)
    sandbox.close()


def test_log_watch_follows_until_read(clocked: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    cli = Cli(clocked)
    broadcast_id = _send(cli)
    # Each wait between refreshes moves the sandbox clock by the interval instead of sleeping,
    # and every table the watch draws is recorded: the refresh loop itself is what is tested.
    monkeypatch.setattr(
        "qontak.cli.broadcasts.time",
        SimpleNamespace(monotonic=time.monotonic, sleep=clocked.sandbox.advance),
    )
    drawn: list[list[str | None]] = []
    real_log_table = log_table

    def spy(rows: list[BroadcastLogEntry], *args: Any, **kwargs: Any) -> Any:
        drawn.append([r.status for r in rows])
        return real_log_table(rows, *args, **kwargs)

    monkeypatch.setattr("qontak.cli.broadcasts.log_table", spy)
    # On a terminal the live table is redrawn at every refresh…
    monkeypatch.setattr("qontak.cli.broadcasts.stdout_is_terminal", lambda: True)
    result = cli("log", broadcast_id, "--watch", "--interval", "1")
    assert result.exit_code == 0
    assert "✓✓ read" in result.stdout
    assert drawn == [["pending"], ["sent"], ["delivered"], ["read"]]
    # …in a pipe the same refreshes run, and only the final table is printed.
    second = _send(cli)
    drawn.clear()
    monkeypatch.setattr("qontak.cli.broadcasts.stdout_is_terminal", lambda: False)
    result = cli("log", second, "--watch", "--interval", "1")
    assert result.exit_code == 0 and result.stdout.endswith("\n")
    assert drawn == [["read"]] and "✓✓ read" in result.stdout


def test_log_shows_whatsapp_error_text(cli: Cli) -> None:
    broadcast_id = _send(cli, "6281234133010")
    result = cli("log", broadcast_id, "--watch", "--interval", "0.05")
    assert result.exit_code == ExitCode.API_ERROR
    assert "133010" in result.stdout and "not registered" in result.stdout


def test_log_unknown_broadcast_is_an_api_error(cli: Cli) -> None:
    result = cli("log", "no-such-broadcast")
    assert result.exit_code == ExitCode.API_ERROR
    assert "404" in _one_error_line(result.stderr)


def test_broadcasts_lists_status_counts(cli: Cli) -> None:
    first = _send(cli)
    second = _send(cli, "6281234131026")
    result = cli("broadcasts", "--since", "1h")
    assert result.exit_code == 0
    assert first in result.stdout and second in result.stdout
    items = [Broadcast.model_validate(b) for b in cli.json("broadcasts", "--since", "2000-01-01")]
    assert {b.id for b in items} == {first, second}
    assert all(b.message_status_count is not None for b in items)
    assert cli.json("broadcasts", "--until", "2000-01-01") == []


def _whole_words_at_80(stdout: str, *headers: str) -> None:
    """Every header word appears whole and no line is wider than the console."""
    assert all(len(line) <= 80 for line in stdout.splitlines()), stdout
    for word in " ".join(headers).split():
        assert re.search(rf"(?<!\S){re.escape(word)}(?!\S)", stdout), (word, stdout)


def _unbroken_or_absent(stdout: str, ident: str) -> None:
    assert ident in stdout or ident[:6] not in stdout, (ident, stdout)


def test_tables_fit_80_columns_with_whole_headers_and_ids(cli: Cli) -> None:
    narrow = {"COLUMNS": "80"}
    result = cli("templates", env=narrow)
    assert result.exit_code == 0
    _whole_words_at_80(result.stdout, "Name", "Lang", "Category", "Status", "Variables")
    for t in cli.json("templates"):
        assert t["name"] in result.stdout
        _unbroken_or_absent(result.stdout, t["id"])
    assert "hidden at 80 columns: " in result.stdout and "ID" in result.stdout

    read, failed = _send(cli), _send(cli, "6281234131026")
    for broadcast_id in (read, failed):  # both final, so the counts below are settled
        cli("log", broadcast_id, "--watch", "--interval", "0.05")
    result = cli("broadcasts", env=narrow)
    assert result.exit_code == 0
    _whole_words_at_80(result.stdout, "ID", "Statuses")
    assert read in result.stdout and failed in result.stdout  # ids stay whole: log needs them
    assert "1 read" in result.stdout and "1 failed" in result.stdout

    for broadcast_id in (read, failed):
        result = cli("log", broadcast_id, env=narrow)
        _whole_words_at_80(result.stdout, "Phone", "Name", "Status", "Error")
        [row] = cli.json("log", broadcast_id)
        _unbroken_or_absent(result.stdout, row["whatsapp_message_id"])
    assert "not registered" not in result.stdout and "131026: Unable to deliver" in result.stdout

    result = cli("channels", env=narrow)
    _whole_words_at_80(result.stdout, "ID", "Phone number", "Account name", "Active")
    assert CHANNEL_ID in result.stdout


def test_tables_show_every_column_on_a_wide_console(cli: Cli) -> None:
    broadcast_id = _send(cli)
    result = cli("broadcasts", env={"COLUMNS": "200"})
    for header in ("Created", "To", "Template", "Pending", "Delivered", "Failed"):
        assert header in result.stdout
    assert broadcast_id in result.stdout and "hidden" not in result.stdout
    result = cli("templates", env={"COLUMNS": "200"})
    assert ORDER_ID in result.stdout and "Buttons" in result.stdout


def test_broadcasts_bad_date_is_one_line_exit_2(cli: Cli) -> None:
    result = cli("broadcasts", "--since", "yesterday-ish")
    assert result.exit_code == ExitCode.USAGE
    assert "--since" in _one_error_line(result.stderr)


# --- exit codes per failure class --------------------------------------------------------------

SECRET = "very-secret-value-123"


def test_bad_credentials_exit_3_without_the_secret(cli: Cli) -> None:
    result = cli("channels", env={"QONTAK_CLIENT_SECRET": SECRET})
    assert result.exit_code == ExitCode.AUTH
    line = _one_error_line(result.stderr)
    assert "401" in line
    assert SECRET not in result.stdout + result.stderr


def test_missing_credentials_is_a_configuration_error_exit_2(cli: Cli) -> None:
    result = cli("channels", env={"QONTAK_CLIENT_ID": None, "QONTAK_CLIENT_SECRET": None})
    assert result.exit_code == ExitCode.USAGE
    assert "QONTAK_CLIENT_ID" in _one_error_line(result.stderr)


def test_env_sandbox_falls_back_to_the_sandbox_credentials(cli: Cli) -> None:
    env = {"QONTAK_CLIENT_ID": None, "QONTAK_CLIENT_SECRET": None}
    result = cli("--env", "sandbox", "channels", "--json", env=env)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)[0]["id"] == CHANNEL_ID


def test_rate_limited_exit_4(cli: Cli, served: Served) -> None:
    served.sandbox.set_faults(FaultConfig(rate_limit=1.0))
    result = cli("--max-retries", "0", "channels")
    assert result.exit_code == ExitCode.RATE_LIMITED
    assert "429" in _one_error_line(result.stderr)


def test_rate_limited_by_the_sandbox_limits_exit_4(cli: Cli, served: Served) -> None:
    served.sandbox.set_rate_limits(RateLimitConfig(direct_per_minute=1))
    _send(cli)
    result = cli(
        "--max-retries", "0", "send", "--to", "081234567890", "-t", "welcome_message", "-l", "id"
    )
    assert result.exit_code == ExitCode.RATE_LIMITED
    assert len(served.sandbox.messages()) == 1


def test_lost_response_is_outcome_unknown_exit_5(cli: Cli, served: Served) -> None:
    served.sandbox.set_faults(FaultConfig(lost_response=1.0, scope="send"))
    result = cli("send", "--to", "081234567890", "-t", "welcome_message", "-l", "id")
    assert result.exit_code == ExitCode.OUTCOME_UNKNOWN
    _one_error_line(result.stderr)
    assert len(served.sandbox.messages()) == 1  # it was accepted; the CLI did not resend


def test_unreachable_server_is_exit_1(cli: Cli) -> None:
    result = cli("--max-retries", "0", "channels", env={"QONTAK_BASE_URL": "http://127.0.0.1:9"})
    assert result.exit_code == ExitCode.API_ERROR
    _one_error_line(result.stderr)


# --- bad arguments -----------------------------------------------------------------------------


def test_unknown_option_is_one_line_exit_2(cli: Cli) -> None:
    result = cli("send", "--frobnicate")
    assert result.exit_code == ExitCode.USAGE
    assert "--frobnicate" in _one_error_line(result.stderr)


def test_bad_choice_and_missing_argument_are_one_line_exit_2(cli: Cli) -> None:
    for args in (
        ["--env", "moon", "channels"],
        ["log"],
        ["send", "--var"],
        ["broadcasts", "--limit", "zero"],
    ):
        result = cli(*args)
        assert result.exit_code == ExitCode.USAGE, args
        _one_error_line(result.stderr)


def test_bad_var_syntax_is_one_line_exit_2(cli: Cli, served: Served) -> None:
    result = cli("send", "--to", "081234567890", "-t", "order_update", "-l", "id", "--var", "Budi")
    assert result.exit_code == ExitCode.USAGE
    assert "KEY=VALUE" in _one_error_line(result.stderr)
    assert served.sandbox.messages() == []


def test_several_header_flags_are_rejected(cli: Cli) -> None:
    result = cli(
        "preview",
        "-t",
        "promo_image",
        "-l",
        "id",
        "--header-image",
        "https://x.co/a.png",
        "--header-video",
        "https://x.co/a.mp4",
    )
    assert result.exit_code == ExitCode.USAGE
    _one_error_line(result.stderr)


# --- debug and doctor --------------------------------------------------------------------------


def test_debug_shows_traceback_and_redacted_request_logs(cli: Cli) -> None:
    result = cli("--debug", "channels", env={"QONTAK_CLIENT_SECRET": SECRET})
    assert result.exit_code == ExitCode.AUTH
    assert "Traceback" in result.stderr
    assert SECRET not in result.stdout + result.stderr


def test_doctor_all_good(cli: Cli) -> None:
    out = cli.json("doctor")
    assert out["ok"] is True
    assert [c["name"] for c in out["checks"]] == [
        "configuration",
        "reachability",
        "clock",
        "credentials",
    ]
    assert all(c["status"] == "ok" for c in out["checks"])
    result = cli("doctor")
    assert result.exit_code == 0 and "all good" in result.stdout


def test_doctor_says_credentials_are_rejected(cli: Cli) -> None:
    result = cli("doctor", env={"QONTAK_CLIENT_SECRET": SECRET})
    assert result.exit_code == ExitCode.AUTH
    assert "rejected" in result.stdout
    assert SECRET not in result.stdout + result.stderr


def test_doctor_says_configuration_is_missing(cli: Cli) -> None:
    result = cli("doctor", env={"QONTAK_CLIENT_ID": None})
    assert result.exit_code == ExitCode.USAGE
    assert "QONTAK_CLIENT_ID" in result.stdout


# --- demo --------------------------------------------------------------------------------------


def test_demo_json_sends_every_kind_and_each_reaches_read(cli: Cli) -> None:
    from qontak.cli.demo import KINDS

    out = cli.json("demo", "--delays", "0,0,0")
    assert [r["kind"] for r in out["results"]] == [k.label for k in KINDS]
    assert out["inbox"] is None
    Channel.model_validate(out["channel"])
    for r in out["results"]:
        Broadcast.model_validate(r["broadcast"])
        DirectMessage.model_validate(r["message"])
        assert [BroadcastLogEntry.model_validate(x).status for x in r["log"]] == ["read"]
        assert r["final_status"] == "read" and r["statuses"][-1] == "read"
        assert r["preview"]
    # ...and ends with the campaign job: bad row, duplicate and opt-out left out, the faults'
    # unknown outcomes reconciled, every customer accepted, a report written.
    campaign = out["campaign"]
    assert campaign["check"]["invalid"] == 1
    assert campaign["status"]["rejects"] == {"invalid": 1, "duplicate": 1, "opted_out": 1}
    assert campaign["status"]["counts"]["accepted"] == 19
    assert campaign["reconciled"], "the demo's faults should leave unknowns to reconcile"
    assert Path(campaign["report"]).read_text(encoding="utf-8").startswith("<!doctype html>")


# --- help --------------------------------------------------------------------------------------


def test_help_shows_flags_without_a_value(cli: Cli) -> None:
    for command in ([], ["send"], ["log"], ["sandbox"], ["templates"], ["templates", "show"]):
        result = cli(*command, "--help")
        assert result.exit_code == 0, command
        assert "--json" in result.stdout and "--help" in result.stdout
        assert "<bool>" not in result.stdout, command
    send = cli("send", "--help").stdout
    assert "<float>" in send  # options that take a value still say which kind


# --- sandbox command: startup failures come before the banner ---------------------------------


def test_sandbox_on_a_port_in_use_is_one_line_exit_1_without_a_banner(cli: Cli) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cli("sandbox", "--port", str(port))
    assert result.exit_code == ExitCode.API_ERROR  # not uvicorn's 3, which means "auth"
    assert f"127.0.0.1:{port}" in _one_error_line(result.stderr)
    assert result.stdout == ""  # no "Serving; press Ctrl-C" for a server that never served


def test_sandbox_bad_arguments_are_one_line_exit_2_without_a_banner(
    cli: Cli, tmp_path: Path
) -> None:
    bad_seed = tmp_path / "seed.yaml"
    bad_seed.write_text("templates: [\n")
    for args, flag in (
        (["--db", "/nonexistent/dir/x.db"], "--db"),
        (["--port", "99999"], "--port"),
        (["--port", "-1"], "--port"),
        (["--seed", str(tmp_path / "missing.yaml")], "--seed"),
        (["--seed", str(bad_seed)], "--seed"),
        (["--faults", "bogus=1"], "--faults"),
    ):
        result = cli("sandbox", *args)
        assert result.exit_code == ExitCode.USAGE, args
        assert flag in _one_error_line(result.stderr), args
        assert result.stdout == "", args
    result = cli("sandbox", env={"QONTAK_SANDBOX_FAULTS": "bogus=1"})
    assert result.exit_code == ExitCode.USAGE
    assert "QONTAK_SANDBOX_FAULTS" in _one_error_line(result.stderr)


def test_sandbox_help_says_how_to_limit_faults_to_sends(cli: Cli) -> None:
    result = cli("sandbox", "--help")
    assert "scope=send" in result.stdout and "QONTAK_SANDBOX_FAULTS" in result.stdout


# --- error wording and --json errors -----------------------------------------------------------

WELCOME_ID = "5a4db0c0-0008-4d00-8000-00000000d008"


def test_errors_speak_cli_not_sdk(cli: Cli) -> None:
    line = _one_error_line(cli("channels", env={"QONTAK_CLIENT_SECRET": None}).stderr)
    assert "set QONTAK_CLIENT_SECRET (environment or .env) or use --env sandbox" in line
    assert "pass client_secret=" not in line
    for value in ("0", "-1", "nan"):
        result = cli("--timeout", value, "channels")
        assert result.exit_code == ExitCode.USAGE, value
        line = _one_error_line(result.stderr)
        assert "--timeout must be a positive number of seconds" in line and "httpx" not in line
    result = cli("--max-retries", "-3", "channels")
    assert result.exit_code == ExitCode.USAGE  # not silently "no retries"
    assert "--max-retries" in _one_error_line(result.stderr)
    result = cli("--max-retries", "0", "channels", env={"QONTAK_BASE_URL": "http://127.0.0.1:9"})
    assert result.exit_code == ExitCode.API_ERROR
    assert "http://127.0.0.1:9" in _one_error_line(result.stderr)  # which URL was tried
    result = cli("channels", env={"QONTAK_CLIENT_SECRET": SECRET})
    line = _one_error_line(result.stderr)
    assert "check QONTAK_CLIENT_ID/QONTAK_CLIENT_SECRET and the clock" in line
    assert "qontak doctor" in line and SECRET not in line


def test_json_errors_go_to_stdout_with_what_is_needed_to_reconcile(
    cli: Cli, served: Served
) -> None:
    served.sandbox.set_faults(FaultConfig(lost_response=1.0, scope="send"))
    result = cli("send", "--to", "0812-3456-7890", "-t", "welcome_message", "-l", "id", "--json")
    assert result.exit_code == ExitCode.OUTCOME_UNKNOWN
    line = _one_error_line(result.stderr)  # the red line stays on stderr
    error = json.loads(result.stdout)["error"]
    assert error["type"] == "DeliveryUnknownError" and error["exit_code"] == 5
    assert error["message"] == line.removeprefix("error: ")
    assert error["to_number"] == "6281234567890"
    assert error["message_template_id"] == WELCOME_ID
    assert error["status_code"] is None and "request_id" in error
    # sent_at is what `qontak broadcasts --since` takes, and finds the accepted message.
    served.sandbox.set_faults(None)
    [accepted] = served.sandbox.messages()
    found = cli.json("broadcasts", "--since", error["sent_at"])
    assert [b["id"] for b in found] == [accepted["broadcast_id"]]


def test_json_errors_for_auth_usage_and_validation(cli: Cli) -> None:
    result = cli("channels", "--json", env={"QONTAK_CLIENT_SECRET": SECRET})
    assert result.exit_code == ExitCode.AUTH
    error = json.loads(result.stdout)["error"]
    assert error["type"] == "AuthenticationError" and error["status_code"] == 401
    assert SECRET not in result.stdout + result.stderr
    for args in (["send", "--nope", "--json"], ["--json", "broadcasts", "--since", "soon"]):
        result = cli(*args)
        assert result.exit_code == ExitCode.USAGE, args
        assert json.loads(result.stdout)["error"]["exit_code"] == 2, args
    result = cli("send", "--to", "081234567890", "-t", "order_update", "-l", "id", "--json")
    assert json.loads(result.stdout)["error"]["type"] == "UsageError"
    # A command that already printed its JSON does not print a second document.
    result = cli("send", "--dry-run", "--to", "081234567890", "-t", "order_update", "-l", "id",
                 "--json")  # fmt: skip
    assert result.exit_code == ExitCode.USAGE
    assert json.loads(result.stdout)["problems"]


# --- doctor wording ----------------------------------------------------------------------------


def test_doctor_says_reachable_and_in_sync(cli: Cli) -> None:
    checks = {c["name"]: c["detail"] for c in cli.json("doctor")["checks"]}
    assert checks["reachability"].startswith("reachable: ")
    assert "answered" in checks["reachability"]
    assert checks["clock"] == "in sync with the server (±1 s)"


def test_doctor_clock_verdicts() -> None:
    from qontak.cli.doctor import clock_check

    for skew in (0.0, 1.0, -1.6, 2.0):
        check = clock_check(skew)
        assert (check.status, check.detail) == ("ok", "in sync with the server (±1 s)"), skew
    assert clock_check(5.2).detail == "local clock differs by +5 s (limit ±300 s)"
    assert clock_check(-45).status == "warn"
    assert clock_check(400).status == "fail" and "ahead of" in clock_check(400).detail
    assert clock_check(None).status == "warn"


def test_demo_says_plainly_when_a_kind_was_not_read(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A magic number: the demo's own sandbox fails every message sent to it (131026).
    monkeypatch.setattr("qontak.cli.demo.DEMO_NUMBER", "6281234131026")
    result = cli("demo", "--delays", "0,0,0")
    assert result.exit_code == ExitCode.API_ERROR
    assert "sent and read" not in result.stdout
    assert "0 of 7 kinds read" in result.stdout
    line = _one_error_line(result.stderr)
    assert "not read: OTP (failed)" in line


# --- the CLI is a client of the public SDK and of public typer ----------------------------------

_CLI_DIR = Path(__file__).resolve().parents[2] / "src" / "qontak" / "cli"
# cli/sandbox.py belongs to the sandbox work; every other module of the CLI is checked.
_CLI_MODULES = sorted(p for p in _CLI_DIR.glob("*.py") if p.name != "sandbox.py")


@pytest.mark.parametrize("path", _CLI_MODULES, ids=lambda p: p.name)
def test_cli_imports_only_public_names(path: Path) -> None:
    import ast

    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        modules: list[str] = []
        if isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            modules.append(base)
            modules += [base + ("" if base.endswith(".") else ".") + a.name for a in node.names]
        elif isinstance(node, ast.Import):
            modules += [a.name for a in node.names]
        for name in modules:
            parts = [p for p in name.split(".") if p]
            # Our own private modules (`._output`) are fine; nothing private of the SDK
            # (`.._client`, `qontak._config`) nor of typer (`typer._click`).
            sdk = name.startswith("..") or parts[:1] == ["qontak"]
            if sdk or parts[:1] == ["typer"]:
                assert not any(p.startswith("_") for p in parts), f"{path.name}: {name}"
    text = path.read_text(encoding="utf-8")
    assert "__signature__" not in text and "get_type_hints" not in text, path.name


def test_configuration_errors_are_read_by_setting_not_by_text() -> None:
    from qontak import ConfigurationError
    from qontak.cli._state import describe_error

    exc = ConfigurationError("credentials incomplete", setting="client_secret", reason="missing")
    assert describe_error(exc) == (
        "client_secret: missing; set QONTAK_CLIENT_SECRET (environment or .env) "
        "or use --env sandbox"
    )
    # The same words with no structure behind them are shown as they are.
    worded = ConfigurationError("client_secret: missing; pass client_secret=")
    assert describe_error(worded) == "client_secret: missing; pass client_secret="
    # A keyword argument the CLI filled from a flag is named as the flag.
    url = ConfigurationError(
        "base_url: must not hold a user name or password",
        setting="base_url",
        reason="must not hold a user name or password",
    )
    assert describe_error(url) == "--base-url: must not hold a user name or password"
    bare = ConfigurationError("timeout: must be > 0", setting="timeout")  # reason = the text
    assert describe_error(bare) == "timeout: must be > 0"
    # One named after an environment variable keeps that name.
    env = ConfigurationError("QONTAK_BASE_URL: not http(s)", setting="QONTAK_BASE_URL")
    assert describe_error(env) == "QONTAK_BASE_URL: not http(s)"


def test_no_arguments_prints_help_and_exits_2(cli: Cli) -> None:
    result = cli()
    assert result.exit_code == ExitCode.USAGE
    assert "Usage" in result.stdout and "channels" in result.stdout
    assert result.stderr.strip() == ""


def test_a_group_without_arguments_prints_its_help_not_an_error() -> None:
    import typer
    from typer.testing import CliRunner

    from qontak.cli._app import QontakGroup, QontakSubGroup, use_qontak_classes

    root = typer.Typer(cls=QontakGroup, no_args_is_help=True)
    group = typer.Typer(cls=QontakSubGroup, no_args_is_help=True, help="Things.")

    @group.command("list")
    def list_things() -> None:
        """List the things."""

    @root.callback()
    def main() -> None:
        """The root."""

    root.add_typer(group, name="things")
    use_qontak_classes(root)
    result = CliRunner().invoke(root, ["things"])
    assert result.exit_code == ExitCode.USAGE
    assert "list" in result.stdout and "Things" in result.stdout
    assert "error" not in result.stderr


def test_send_to_given_twice_is_refused_before_anything_is_sent(cli: Cli, served: Served) -> None:
    args = ["--to", "081234567890", "--to", "081298765432", "-t", "welcome_message", "-l", "id"]
    result = cli("send", *args)
    assert result.exit_code == ExitCode.USAGE
    line = _one_error_line(result.stderr)
    assert "--to given 2 times" in line and "qontak campaign run" in line
    assert served.sandbox.messages() == []
    assert cli("preview", *args).exit_code == ExitCode.USAGE
    # With --json the refusal is also the stdout document.
    out = cli("send", *args, "--json")
    assert json.loads(out.stdout)["error"]["exit_code"] == 2


def test_send_payload_file_that_is_binary_or_a_directory_is_one_line_exit_2(
    cli: Cli, served: Served, tmp_path: Path
) -> None:
    binary = tmp_path / "photo.json"
    binary.write_bytes(sample_png())
    latin1 = tmp_path / "latin1.json"
    latin1.write_bytes('{"to_name": "Jos\xe9"}'.encode("latin-1"))
    for source, words in ((binary, "not UTF-8"), (latin1, "not UTF-8"), (tmp_path, "directory")):
        result = cli("send", "--payload", f"@{source}", "-t", "welcome_message", "-l", "id")
        assert result.exit_code == ExitCode.USAGE, result.stderr
        line = _one_error_line(result.stderr)
        assert words in line and "--payload" in line
    assert served.sandbox.messages() == []
    # A UTF-8 file that starts with a byte-order mark is still JSON.
    bom = tmp_path / "bom.json"
    bom.write_bytes(b"\xef\xbb\xbf" + json.dumps({"body": []}).encode())
    result = cli(
        "preview",
        "--payload",
        f"@{bom}",
        "--to",
        "081234567890",
        "-t",
        "welcome_message",
        "-l",
        "id",
        "--json",
    )
    assert result.exit_code == 0, result.stderr


# --- doctor: secrets in the base URL, servers that are not Qontak, narrow terminals ------------

_PAGE = (
    b"<!DOCTYPE html><html><head><title>404 Not Found</title><style>body{color:red}</style>"
    b"</head><body><h1>Not Found</h1><p>The requested URL was not found on this server.</p>"
    b"<script>var tracking = 1;</script></body></html>"
)


@pytest.fixture
def web_server() -> Iterator[str]:
    """A plain web server on loopback that answers every request with an HTML 404 page (what
    a wrong base URL or a proxy in front of the API looks like)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(_PAGE)))
            self.end_headers()
            self.wfile.write(_PAGE)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_doctor_never_prints_a_password_in_the_base_url(cli: Cli, served: Served) -> None:
    password = "pw-4f1c9e7d-canary"
    with_userinfo = served.url.replace("http://", f"http://budi:{password}@")
    for url in (with_userinfo, "ftp://budi:" + password + "@127.0.0.1:9"):
        for args in (["doctor"], ["doctor", "--json"], ["--debug", "doctor"]):
            result = cli(*args, env={"QONTAK_BASE_URL": url})
            assert password not in result.stdout + result.stderr, (args, url)
        # Other commands, which quote the base URL they tried, do not print it either.
        result = cli("--max-retries", "0", "channels", env={"QONTAK_BASE_URL": url})
        assert result.exit_code != 0 and password not in result.stdout + result.stderr


def test_doctor_says_reachable_but_not_qontak_for_another_web_server(
    cli: Cli, web_server: str
) -> None:
    out = cli("doctor", "--json", env={"QONTAK_BASE_URL": web_server})
    checks = {c["name"]: c for c in json.loads(out.stdout)["checks"]}
    reach = checks["reachability"]
    assert reach["status"] != "ok"
    assert reach["detail"].startswith("reachable, but not a Qontak API")
    assert "HTTP 404" in reach["detail"] and "text/html" in reach["detail"]
    # The signed request then fails on the same page, quoted by its title, not pasted.
    creds = checks["credentials"]["detail"]
    assert "text/html page: 404 Not Found" in creds and "<" not in creds
    # The real API's (the sandbox's) refusal of the unsigned probe is recognised as Qontak.
    sandbox = {c["name"]: c for c in cli.json("doctor")["checks"]}
    assert sandbox["reachability"]["status"] == "ok"


def test_doctor_wraps_to_the_terminal_width(cli: Cli, web_server: str) -> None:
    from rich.cells import cell_len

    result = cli("doctor", env={"QONTAK_BASE_URL": web_server, "COLUMNS": "60"})
    lines = result.stdout.splitlines()
    assert lines and all(cell_len(line.rstrip()) <= 60 for line in lines), result.stdout
    # Wrapped under the detail column (not under the mark or the name), every word kept.
    continued = [line for line in lines if line.startswith(" " * 16) and line.strip()]
    assert continued, result.stdout
    out = cli("doctor", "--json", env={"QONTAK_BASE_URL": web_server, "COLUMNS": "60"})
    text = " ".join(result.stdout.split())
    for check in json.loads(out.stdout)["checks"]:
        assert " ".join(check["detail"].split()) in text


def test_html_error_page_is_quoted_not_pasted(cli: Cli, web_server: str) -> None:
    result = cli("--max-retries", "0", "channels", env={"QONTAK_BASE_URL": web_server})
    assert result.exit_code == ExitCode.API_ERROR
    line = _one_error_line(result.stderr)
    assert "HTTP 404" in line and "text/html page: 404 Not Found" in line
    assert "<" not in line and "tracking" not in line and "color:red" not in line
    assert "--base-url" in line  # where to look, in CLI terms
    error = json.loads(cli("channels", "--json", env={"QONTAK_BASE_URL": web_server}).stdout)
    assert error["error"]["status_code"] == 404 and "<html" not in error["error"]["message"]


def test_error_messages_quote_a_page_by_title_or_first_words() -> None:
    from qontak.errors import error_messages, status_error

    long_page = "<html><body><div>" + "word " * 200 + "</div></body></html>"
    [message] = error_messages(long_page)
    assert message.startswith("markup page: word word") and len(message) < 150
    assert error_messages("<html><body><p>Bad &amp; broken</p></body></html>") == [
        "markup page: Bad & broken"
    ]
    err = status_error(
        502,
        body="<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
        headers={"Content-Type": "text/html"},
        method="GET",
        path="/integrations",
    )
    assert str(err) == "HTTP 502 on GET /integrations: text/html page: 502 Bad Gateway"
    # Plain-text and JSON bodies keep their own words.
    assert error_messages("upstream connect error") == ["upstream connect error"]
    assert error_messages({"message": "Unauthorized"}) == ["Unauthorized"]


def test_json_errors_carry_the_structured_fields() -> None:
    from qontak import APIResponseValidationError, ConfigurationError, ValidationError
    from qontak.cli import exit_code_for
    from qontak.cli._state import error_details

    odd = APIResponseValidationError(
        "expected a broadcast object", status_code=200, request_id="req-1", method="GET"
    )
    assert exit_code_for(odd) == ExitCode.API_ERROR
    details = error_details(odd, str(odd), exit_code_for(odd))
    assert details["status_code"] == 200 and details["request_id"] == "req-1"
    invalid = ValidationError("to_number", "too short", code="invalid_phone")
    assert error_details(invalid, str(invalid), ExitCode.USAGE)["code"] == "invalid_phone"
    config = ConfigurationError("timeout: must be > 0", setting="timeout")
    assert error_details(config, str(config), ExitCode.USAGE)["setting"] == "timeout"


# --- a failed delivery under --wait / --watch; outputs end with a newline -----------------------


def test_json_send_wait_with_a_failed_delivery_prints_the_error_object(cli: Cli) -> None:
    args = ["send", "--to", "6281234131026", "-t", "welcome_message", "-l", "id", "--wait"]
    result = cli(*args, "--interval", "0.05", "--json")
    assert result.exit_code == ExitCode.API_ERROR
    doc = json.loads(result.stdout)  # still one document on stdout
    assert [BroadcastLogEntry.model_validate(r).status for r in doc["log"]] == ["failed"]
    error = doc["error"]
    assert error["exit_code"] == 1 and error["type"] == "DeliveryFailed"
    assert error["message"].startswith("delivery failed: 131026")
    assert error["to_number"] == "6281234131026" and error["error_code"] == 131026
    assert error["message"] in _one_error_line(result.stderr)


def test_log_watch_says_why_it_exits_1_and_ends_with_a_newline(cli: Cli) -> None:
    broadcast_id = _send(cli, "6281234131026")
    for json_flag in ([], ["--json"]):
        result = cli("log", broadcast_id, "--watch", "--interval", "0.05", *json_flag)
        assert result.exit_code == ExitCode.API_ERROR
        assert "delivery failed: 131026" in _one_error_line(result.stderr)
        assert result.stdout.endswith("\n") and broadcast_id in result.stdout
    watched = cli("log", _send(cli), "--watch", "--interval", "0.05")
    assert watched.exit_code == 0 and watched.stdout.endswith("\n")
    assert "read" in watched.stdout


def test_send_wait_output_in_a_pipe_has_no_spinner_residue(cli: Cli) -> None:
    args = ["send", "--to", "081234567890", "-t", "welcome_message", "-l", "id", "--wait"]
    result = cli(*args, "--interval", "0.05")
    assert result.exit_code == 0
    assert result.stdout.endswith("\n") and result.stderr == ""


def test_otp_preview_shows_the_templates_own_button_label(cli: Cli) -> None:
    # The seeded Indonesian login_otp labels its code button "Salin kode".
    result = cli("preview", "-t", "login_otp", "-l", "id", "--var", "1=482913")
    assert result.exit_code == 0, result.stderr
    assert "[ Salin kode ⧉ ]" in result.stdout and "Copy code" not in result.stdout
    out = cli.json("preview", "-t", "login_otp", "-l", "id", "--var", "1=482913")
    assert "[ Salin kode ⧉ ] → 482913" in out["preview"]
    shown = cli("templates", "show", "login_otp", "-l", "id")
    assert "Salin kode" in shown.stdout and "Copy code" not in shown.stdout
    english = cli("preview", "-t", "login_otp", "-l", "en", "--var", "1=482913")
    assert "[ Copy code ⧉ ]" in english.stdout  # that template's own label


def test_doctor_tells_qontak_shaped_answers_from_other_servers() -> None:
    import httpx

    from qontak.cli.doctor import looks_like_qontak

    def answer(status: int, body: Any, content_type: str = "application/json") -> httpx.Response:
        text = body if isinstance(body, str) else json.dumps(body)
        return httpx.Response(status, text=text, headers={"Content-Type": content_type})

    assert looks_like_qontak(answer(401, {"message": "Unauthorized"}))  # the gateway
    envelope = {"status": "error", "error": {"code": 404, "messages": ["Resource not found."]}}
    assert looks_like_qontak(answer(404, envelope))
    assert looks_like_qontak(answer(200, {"status": "success", "data": []}))
    assert not looks_like_qontak(answer(404, {"message": "Not Found"}))  # another JSON API
    assert not looks_like_qontak(answer(200, ["a", "list"]))
    assert not looks_like_qontak(answer(401, "<html>login</html>", "text/html"))
    assert not looks_like_qontak(answer(200, "{not json", "application/json"))


def test_error_messages_of_a_huge_or_hostile_page_stay_short() -> None:
    from qontak.errors import error_messages

    # Only the start of a page is read: a title far down is not looked for (which bounds
    # the work on a huge page, or one made of unclosed tags).
    late = "<html><body>" + "<p>filler</p>" * 2_000 + "<title>late</title></body></html>"
    [message] = error_messages(late, content_type="text/html")
    assert "late" not in message and message.startswith("text/html page: filler filler")
    for page in ("<" * 2_000_000, "<script " * 300_000, "<html>" + "x" * 5_000_000):
        [message] = error_messages(page, content_type="text/html")
        assert len(message) < 160


def test_an_error_inside_a_task_group_is_reported_as_itself() -> None:
    # The campaign runner sends from an anyio task group: its errors arrive wrapped in an
    # exception group, which would otherwise read "unhandled errors in a TaskGroup".
    import sys

    from qontak import ConfigurationError
    from qontak.cli._state import _only_error

    if sys.version_info >= (3, 11):
        group_type = ExceptionGroup  # noqa: F821
    else:  # pragma: no cover - Python 3.10 gets it from anyio's dependency
        from exceptiongroup import ExceptionGroup as group_type
    inner = ConfigurationError("QONTAK_CAMPAIGN_DB: cannot open", setting="QONTAK_CAMPAIGN_DB")
    wrapped = group_type("unhandled errors in a TaskGroup", [group_type("nested", [inner])])
    assert _only_error(wrapped) is inner
    two = group_type("two", [ValueError("a"), ValueError("b")])
    assert _only_error(two) is two
