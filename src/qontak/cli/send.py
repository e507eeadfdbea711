"""``qontak send`` and ``qontak preview``: build a message from flags, check it against its
template, show it, and (for ``send``) send it and optionally follow its delivery.

The message is built with the SDK's builders (:mod:`qontak.messages`) chosen by the template's
kind, so the JSON is exactly what the SDK would send:

- AUTHENTICATION: ``messages.otp`` (the code, ``--var 1=CODE``, also fills button 0)
- IMAGE / VIDEO / DOCUMENT header: ``messages.image`` / ``video`` / ``document``
- a dynamic URL button: ``messages.cta_url`` (``--button N=SUFFIX``)
- static buttons only: ``messages.cta_phone``; otherwise ``messages.text``

JSON shapes:

- ``send``: ``{"broadcast": Broadcast, "message": <wire JSON>}`` plus ``"log": [BroadcastLogEntry]``
  and ``"final": bool`` with ``--wait``; when a delivery failed (exit 1), also ``"error":
  {"type": "DeliveryFailed", "message", "exit_code": 1, "to_number", "error_code"}``.
- ``send --dry-run``: ``{"dry_run": true, "message": <wire JSON>, "template": Template,
  "preview": "<text>", "problems": ["field: reason", ...], "upload": null | {"file": path,
  "placeholder_url": "file://..."}}``; nothing is sent or uploaded. With a local header file,
  the message's media URL is the ``file://`` placeholder named in ``"upload"``.
- ``preview``: ``{"message": <wire JSON>, "template": Template, "preview": "<text>",
  "problems": [...]}``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from qontak import (
    BodyParameter,
    BroadcastLogEntry,
    ButtonParameter,
    Channel,
    DirectMessage,
    Qontak,
    Template,
    check_media_file,
    check_message,
    messages,
)
from qontak import preview as render_preview
from qontak.errors import ValidationError
from qontak.models import MEDIA_FORMATS
from qontak.resources.broadcasts import coerce_message, wire_number

from ._output import bubble, console, log_table, print_json, status_text, warn_line
from ._state import command, delivery_failure, fail, state
from .channels import pick_channel
from .exit_codes import ExitCode
from .templates import resolve_template

__all__ = [
    "MessageArgs",
    "build_message",
    "register",
    "upload_local_media",
    "wait_for_log",
]

# --- shared options (send and preview take the same ones) -----------------------------------------

# A list, so that a second --to is seen and refused rather than silently winning.
ToOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--to", metavar="<str>", help="Recipient number, e.g. 0812-3456-7890 or +62812… (one)."
    ),
]
NameOpt = Annotated[str | None, typer.Option("--name", help="Recipient name (default: number).")]
TemplateOpt = Annotated[str | None, typer.Option("--template", "-t", help="Template name or id.")]
LanguageOpt = Annotated[
    str | None, typer.Option("--language", "-l", help="Template language (when several).")
]
ChannelOpt = Annotated[
    str | None,
    typer.Option("--channel", help="Channel id or phone number (default: the only channel)."),
]
VarOpt = Annotated[
    list[str] | None,
    typer.Option("--var", "-v", help="Body variable KEY=VALUE, e.g. --var 1=Budi (repeatable)."),
]
ImageOpt = Annotated[
    str | None, typer.Option("--header-image", help="Header image: URL or local file.")
]
VideoOpt = Annotated[
    str | None, typer.Option("--header-video", help="Header video: URL or local file.")
]
DocumentOpt = Annotated[
    str | None, typer.Option("--header-document", help="Header document (PDF): URL or file.")
]
FilenameOpt = Annotated[
    str | None, typer.Option("--filename", help="File name shown for header media.")
]
ButtonOpt = Annotated[
    list[str] | None,
    typer.Option("--button", "-b", help="Button value INDEX=VALUE, e.g. --button 0=track/123."),
]
PayloadOpt = Annotated[
    str | None,
    typer.Option(
        "--payload",
        help="The whole message (or just its 'parameters') as JSON, or @file.json.",
    ),
]


@dataclass
class MessageArgs:
    """The message-building flags of ``send`` and ``preview``."""

    to: str | None = None
    name: str | None = None
    template: str | None = None
    language: str | None = None
    channel: str | None = None
    variables: list[str] = field(default_factory=list)
    header_image: str | None = None
    header_video: str | None = None
    header_document: str | None = None
    filename: str | None = None
    buttons: list[str] = field(default_factory=list)
    payload: str | None = None


@dataclass
class Built:
    """A message ready to show or send, with its template and any local file to upload."""

    message: DirectMessage
    template: Template
    upload: Path | None = None


def _pairs(items: list[str], flag: str) -> list[tuple[str, str]]:
    pairs = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            fail(f"{flag}: expected KEY=VALUE, got {item!r}")
        pairs.append((key.strip(), value))
    return pairs


def _load_payload(text: str) -> dict[str, Any]:
    raw = text
    if text.startswith("@"):
        path = Path(text[1:])
        if path.is_dir():
            fail(f"--payload: {path} is a directory, not a JSON file")
        if not path.is_file():
            fail(f"--payload: no such file: {path}")
        try:
            raw = path.read_bytes().decode("utf-8-sig")  # a BOM (Windows editors) is fine
        except OSError as exc:
            fail(f"--payload: cannot read {path}: {exc.strerror or type(exc).__name__}")
        except UnicodeDecodeError as exc:
            fail(f"--payload: {path} is not UTF-8 text (byte {exc.start}); expected a JSON file")
    try:
        data = json.loads(raw)
    except ValueError as exc:
        fail(f"--payload: not valid JSON ({exc})")
    if not isinstance(data, dict):
        fail("--payload: expected a JSON object")
    return data


def _media(args: MessageArgs) -> tuple[str, str] | None:
    given = [
        (kind, value)
        for kind, value in (
            ("IMAGE", args.header_image),
            ("VIDEO", args.header_video),
            ("DOCUMENT", args.header_document),
        )
        if value
    ]
    if len(given) > 1:
        fail("give only one of --header-image, --header-video, --header-document")
    return given[0] if given else None


def _is_url(value: str) -> bool:
    return value.startswith(("http://", "https://"))


def _resolve(client: Qontak, args: MessageArgs) -> tuple[Template, Channel]:
    if not args.template:
        fail("--template is required (a template name or id; see 'qontak templates')")
    template = resolve_template(client, args.template, args.language)
    channel = pick_channel(list(client.channels.list()), args.channel)
    return template, channel


def build_message(client: Qontak, args: MessageArgs) -> Built:
    """Resolve template and channel, and build the message the flags describe.

    Nothing is uploaded here: a local file given as header media gets a ``file://`` stand-in
    URL and is recorded in :attr:`Built.upload`, so the message can be checked first and the
    file uploaded (:func:`upload_local_media`) only once it is known to be valid.
    """
    if args.payload:
        return _from_payload(client, args)
    if not args.to:
        fail("--to is required (the recipient's phone number)")
    template, channel = _resolve(client, args)
    body = [BodyParameter(key=k, value_text=v, value=k) for k, v in _pairs(args.variables, "--var")]
    buttons = _pairs(args.buttons, "--button")
    media = _media(args)
    local: Path | None = None
    url = ""
    if media is not None:
        kind, source = media
        if template.header_format not in MEDIA_FORMATS:
            raise ValidationError(
                "parameters.header", f"template {template.name!r} has no {kind} header"
            )
        if _is_url(source):
            url = source
        else:
            local = Path(source)
            if not local.is_file():
                fail(f"--header-{kind.lower()}: not a URL and no such file: {source}")
            check_media_file(local, kind=kind, field=f"--header-{kind.lower()}")
            url = local.resolve().as_uri()
    common: dict[str, Any] = {
        "template": template,
        "channel": channel,
        "name": args.name,
        "language": template.language,
    }
    filename = args.filename or (local.name if local is not None else None)
    message = _by_kind(args.to, template, body, buttons, media, url, filename, common)
    return Built(message=message, template=template, upload=local)


def upload_local_media(client: Qontak, built: Built) -> None:
    """Upload the local header file of ``built`` (if any) and put its URL in the message in
    place of the ``file://`` stand-in. Call it only after the message passed validation, so
    an invalid message never leaves a stray upload behind."""
    header = built.message.parameters.header
    if built.upload is None or header is None:
        return
    uploaded = client.file_uploader.upload(built.upload, kind=header.format)
    for param in header.params:
        if param.key == "url":
            param.value = uploaded.url


def _by_kind(
    to: str,
    template: Template,
    body: list[BodyParameter],
    buttons: list[tuple[str, str]],
    media: tuple[str, str] | None,
    url: str,
    filename: str | None,
    common: dict[str, Any],
) -> DirectMessage:
    button_params = [ButtonParameter(index=i, type="url", value=v) for i, v in buttons]
    if template.is_authentication and len(body) == 1 and not buttons:
        return messages.otp(to, body[0].value_text, **common)
    if media is not None:
        kind = media[0]
        builder = {"IMAGE": messages.image, "VIDEO": messages.video}.get(kind, messages.document)
        return builder(to, url, filename=filename, variables=body, buttons=button_params or (
            () if kind == "IMAGE" else None), **common)  # fmt: skip
    dynamic = [i for i, b in enumerate(template.buttons) if b.is_dynamic]
    if len(buttons) == 1 and dynamic and buttons[0][0] == str(dynamic[0]):
        return messages.cta_url(to, buttons[0][1], variables=body, index=dynamic[0], **common)
    if buttons:
        return messages.template_message(to, variables=body, buttons=button_params, **common)
    if template.buttons:
        return messages.cta_phone(to, variables=body, **common)
    return messages.text(to, body, **common)


def _from_payload(client: Qontak, args: MessageArgs) -> Built:
    conflicting = [
        flag
        for flag, value in (
            ("--var", args.variables),
            ("--button", args.buttons),
            ("--header-image", args.header_image),
            ("--header-video", args.header_video),
            ("--header-document", args.header_document),
        )
        if value
    ]
    if conflicting:
        fail(f"--payload cannot be combined with {', '.join(conflicting)}")
    data = _load_payload(args.payload or "")
    if "to_number" not in data and set(data) <= {"header", "body", "buttons"}:
        data = {"parameters": data}
    if args.to:
        data["to_number"] = args.to
    if args.name:
        data["to_name"] = args.name
    if args.template or "message_template_id" not in data:
        template, channel = _resolve(client, args)
        data["message_template_id"] = template.id
        data.setdefault("language", {"code": template.language})
    else:
        template = client.templates.get(str(data["message_template_id"]))
        channel = None
    if args.channel or "channel_integration_id" not in data:
        channel = channel or pick_channel(list(client.channels.list()), args.channel)
        data["channel_integration_id"] = channel.id
    if "to_number" not in data:
        fail("--to is required (the payload has no to_number)")
    data.setdefault("to_name", args.name or data["to_number"])
    data.setdefault("language", {"code": template.language})
    message = coerce_message(data)
    message.to_number = wire_number(message.to_number, client.default_region)
    return Built(message=message.with_template(template), template=template)


#: Where a local header file is assumed to be while its message is checked: the upload's
#: https URL takes the place of the ``file://`` stand-in before the message is sent.
_UPLOAD_STAND_IN = "https://upload.invalid/"


def _problems(built: Built) -> list[str]:
    message = built.message
    if built.upload is not None and message.parameters.header is not None:
        # Check the message as it will be sent (an https URL), not with the file:// stand-in.
        message = message.model_copy(deep=True)
        assert message.parameters.header is not None
        for param in message.parameters.header.params:
            if param.key == "url":
                param.value = _UPLOAD_STAND_IN + quote(built.upload.name)
    return [str(p) for p in check_message(message, built.template)]


def _show(built: Built, title: str) -> None:
    out = console()
    out.print(bubble(built.template, built.message, title=title))


def _upload_note(built: Built) -> dict[str, str] | None:
    """For ``--dry-run --json``: the local file that a real send would upload, and the
    placeholder URL standing in for it in ``message`` (None when nothing is uploaded)."""
    header = built.message.parameters.header
    if built.upload is None or header is None:
        return None
    return {"file": str(built.upload), "placeholder_url": header.get("url") or ""}


def _show_json_message(built: Built) -> None:
    out = console()
    out.print("[bold]JSON[/bold] POST /broadcasts/whatsapp/direct")
    if built.upload is not None:
        # The file:// URL inside "the exact JSON" is not what will be sent: say so on its own
        # line, outside the JSON, so the JSON block itself stays valid and copyable.
        out.print(
            f"note: header media is a local file ({built.upload.name}), uploaded on send; "
            "the file:// URL shown is a placeholder for the uploaded file's URL",
            style="yellow",
            highlight=False,
            soft_wrap=True,
        )
    typer.echo(built.message.to_json(indent=2))


def wait_for_log(
    client: Qontak, broadcast_id: str, *, timeout: float, interval: float, quiet: bool
) -> list[BroadcastLogEntry]:
    """Poll the broadcast log until every row is read or failed (or ``timeout`` passes),
    showing a spinner with the latest status unless ``quiet``."""
    if quiet:
        return client.broadcasts.wait(broadcast_id, timeout=timeout, interval=interval)
    progress = Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=console(stderr=True),
        transient=True,
    )
    with progress:
        task = progress.add_task(f"broadcast {broadcast_id}", status="waiting", total=None)

        def update(rows: list[BroadcastLogEntry]) -> None:
            text = ", ".join(status_text(r.status).plain for r in rows) or "no log yet"
            progress.update(task, status=text)

        rows = client.broadcasts.wait(
            broadcast_id, timeout=timeout, interval=interval, on_update=update
        )
        progress.update(task, completed=1, total=1)
    return rows


def _one_recipient(to: list[str] | None, command: str) -> str | None:
    """The single ``--to`` given (None when none was)."""
    if to and len(to) > 1:
        fail(
            f"--to given {len(to)} times; {command} takes one recipient "
            "(for many, use 'qontak campaign run')"
        )
    return to[0] if to else None


def _args(**kwargs: Any) -> MessageArgs:
    kwargs["variables"] = kwargs.pop("variables") or []
    kwargs["buttons"] = kwargs.pop("buttons") or []
    return MessageArgs(**kwargs)


def register(app: typer.Typer) -> None:
    """Add ``send`` and ``preview`` to ``app``."""

    @app.command("send")
    @command
    def send(
        to: ToOpt = None,
        name: NameOpt = None,
        template: TemplateOpt = None,
        language: LanguageOpt = None,
        channel: ChannelOpt = None,
        var: VarOpt = None,
        header_image: ImageOpt = None,
        header_video: VideoOpt = None,
        header_document: DocumentOpt = None,
        filename: FilenameOpt = None,
        button: ButtonOpt = None,
        payload: PayloadOpt = None,
        dry_run: Annotated[
            bool,
            typer.Option("--dry-run", help="Show the preview and the exact JSON; send nothing."),
        ] = False,
        wait: Annotated[
            bool, typer.Option("--wait", help="Follow the log until read or failed.")
        ] = False,
        wait_timeout: Annotated[
            float, typer.Option("--wait-timeout", help="Seconds --wait waits at most.")
        ] = 120.0,
        interval: Annotated[
            float, typer.Option("--interval", help="Seconds between log polls.")
        ] = 1.0,
    ) -> None:
        """Send one template message (validated against its template first).

        JSON: {"broadcast": Broadcast, "message": wire JSON} (+ "log", "final" with --wait,
        and "error" when the delivery failed); with --dry-run {"dry_run": true, "message",
        "template", "preview", "problems", "upload"}.
        """
        st = state()
        recipient = _one_recipient(to, "send")
        args = _args(to=recipient, name=name, template=template, language=language, channel=channel,
                     variables=var, header_image=header_image, header_video=header_video,
                     header_document=header_document, filename=filename, buttons=button,
                     payload=payload)  # fmt: skip
        with st.client() as client:
            built = build_message(client, args)
            problems = _problems(built)
            if dry_run:
                if st.json:
                    print_json(
                        {
                            "dry_run": True,
                            "message": built.message.to_wire(),
                            "template": built.template.to_dict(),
                            "preview": render_preview(built.template, built.message),
                            "problems": problems,
                            "upload": _upload_note(built),
                        }
                    )
                else:
                    _show(built, "preview (dry run: nothing sent)")
                    _show_json_message(built)
                if problems:
                    fail("; ".join(problems), ExitCode.USAGE)
                return
            if problems:
                # Checked against the file:// stand-in, before any upload: an invalid
                # message must leave nothing behind on the server (exit 2 = nothing sent).
                fail("; ".join(problems), ExitCode.USAGE)
            upload_local_media(client, built)
            broadcast = client.broadcasts.send_direct(built.message)
            result: dict[str, Any] = {
                "broadcast": broadcast.to_dict(),
                "message": built.message.to_wire(),
            }
            if not st.json:
                _show(built, f"sent to {built.message.to_number}")
                console().print(f"broadcast id: [bold]{broadcast.id}[/bold]")
            if not wait:
                if st.json:
                    print_json(result)
                return
            # The spinner is for a person at a terminal: never in a pipe or a log file.
            quiet = st.json or not sys.stderr.isatty()
            rows = wait_for_log(
                client, broadcast.id, timeout=wait_timeout, interval=interval, quiet=quiet
            )
        final = bool(rows) and all(r.is_final for r in rows)
        failed = next((r for r in rows if r.status == "failed"), None)
        failure = delivery_failure(failed) if failed is not None else None
        if st.json:
            result["log"] = [r.to_dict() for r in rows]
            result["final"] = final
            if failure is not None:
                # Stdout holds one document: the error goes in it (see qontak.cli's docs).
                result["error"] = failure
            print_json(result)
        else:
            console().print(log_table(rows, title=f"Broadcast {broadcast.id}"))
            if not final:
                warn_line(
                    f"no final status after {wait_timeout:g}s; check 'qontak log {broadcast.id}'"
                )
        if failure is not None:
            fail(failure["message"], ExitCode.API_ERROR)

    @app.command("preview")
    @command
    def preview(
        to: ToOpt = None,
        name: NameOpt = None,
        template: TemplateOpt = None,
        language: LanguageOpt = None,
        channel: ChannelOpt = None,
        var: VarOpt = None,
        header_image: ImageOpt = None,
        header_video: VideoOpt = None,
        header_document: DocumentOpt = None,
        filename: FilenameOpt = None,
        button: ButtonOpt = None,
        payload: PayloadOpt = None,
    ) -> None:
        """Show the message as the recipient will see it (header, body with values, footer,
        buttons). Takes the same arguments as send; nothing is sent or uploaded.

        JSON: {"message": wire JSON, "template": Template, "preview": text, "problems": [...]}.
        """
        st = state()
        recipient = _one_recipient(to, "preview")
        args = _args(to=recipient or "6281234567890", name=name, template=template,
                     language=language, channel=channel, variables=var, header_image=header_image,
                     header_video=header_video, header_document=header_document,
                     filename=filename, buttons=button, payload=payload)  # fmt: skip
        if payload and not recipient:
            args.to = None
        with st.client() as client:
            built = build_message(client, args)
        problems = _problems(built)
        if st.json:
            print_json(
                {
                    "message": built.message.to_wire(),
                    "template": built.template.to_dict(),
                    "preview": render_preview(built.template, built.message),
                    "problems": problems,
                }
            )
            return
        who = built.message.to_number
        if built.message.to_name != who:
            who = f"{built.message.to_name} ({who})"
        _show(built, f"to {who}")
        for problem in problems:
            warn_line(problem)
