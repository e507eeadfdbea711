"""``qontak doctor``: is this machine set up to talk to Qontak? Says plainly what is wrong.

Checks, in order (later checks are skipped when an earlier one makes them meaningless):

1. ``configuration``: credentials and base URL resolve (names the missing variable);
2. ``reachability``: the API host answers HTTP, and the answer is shaped like the Mekari
   gateway's or Qontak's (JSON ``{"message": …}`` or Qontak's envelope); any other answer
   (a web page, another API) is "reachable, but not a Qontak API";
3. ``clock``: local time vs the server's ``Date`` header (HMAC signatures are only accepted
   within ±300 s; more than 30 s is a warning; up to ±2 s is rounding, reported in sync);
4. ``credentials``: a signed request (``GET /integrations``) is accepted.

JSON shape: ``{"ok": bool, "base_url": str | null, "checks": [{"name": str,
"status": "ok" | "warn" | "fail" | "skipped", "detail": str}]}``. Exit code: 0 when every
check passes (warnings allowed), else the code of the first failure (2 configuration,
1 unreachable or clock, 3 credentials rejected, 4 rate limited).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import typer
from rich.table import Table
from rich.text import Text

from qontak.errors import APIStatusError, AuthenticationError, PermissionDeniedError, QontakError

from ._output import console, hide_userinfo, print_json, safe_text
from ._state import command, describe_error, state
from .exit_codes import ExitCode, exit_code_for

__all__ = [
    "Check",
    "clock_check",
    "clock_skew",
    "looks_like_qontak",
    "reachability_check",
    "register",
    "report_grid",
]

#: Qontak rejects signatures whose Date is further than this from its clock.
CLOCK_WINDOW_SECONDS = 300.0
#: Skew above this is worth a warning.
CLOCK_WARN_SECONDS = 30.0
#: Skew up to this is measurement noise: the Date header is whole seconds, plus the round trip.
CLOCK_SYNC_SECONDS = 2.0


@dataclass
class Check:
    """One line of the doctor's report."""

    name: str
    status: str
    detail: str
    code: ExitCode = ExitCode.OK

    def to_dict(self) -> dict[str, Any]:
        """JSON form (without the exit code)."""
        return {"name": self.name, "status": self.status, "detail": self.detail}


def clock_skew(date_header: str | None, local: float) -> float | None:
    """Seconds the local clock is ahead of the server's (negative: behind); None if unknown."""
    if not date_header:
        return None
    try:
        server = parsedate_to_datetime(date_header).timestamp()
    except (TypeError, ValueError):
        return None
    return local - server


def looks_like_qontak(response: httpx.Response) -> bool:
    """Whether ``response`` (to the unsigned probe) is shaped like an answer of the Mekari
    gateway or of Qontak: JSON that is the gateway's ``{"message": "Unauthorized"}`` or
    Qontak's envelope (``{"status": …, "data"|"error": …}``). Any web server answers HTTP; a
    web page, plain text or other JSON means the base URL points somewhere else."""
    if "json" not in response.headers.get("content-type", "").lower():
        return False
    try:
        body = response.json()
    except ValueError:
        return False
    if not isinstance(body, dict):
        return False
    if isinstance(body.get("message"), str):
        # The gateway's refusal of an unsigned request; any other API may say "message"
        # with another status (a JSON 404 is not Qontak's answer to this probe).
        return response.status_code in (401, 403, 429)
    return "status" in body and ("data" in body or "error" in body)


def _content_type(response: httpx.Response) -> str:
    return response.headers.get("content-type", "").split(";")[0].strip() or "no content type"


def reachability_check(response: httpx.Response, base_url: str) -> Check:
    """The reachability verdict. The probe is unsigned, so the gateway is expected to refuse
    it (401/403): that still proves the host answers HTTP, and the shape of the refusal says
    whether it is Qontak's (whether the credentials work is the last check)."""
    status = response.status_code
    if not looks_like_qontak(response):
        return Check(
            "reachability",
            "warn",
            f"reachable, but not a Qontak API: {base_url} answered HTTP {status} "
            f"({_content_type(response)}) where the API answers JSON; check --base-url / "
            "QONTAK_BASE_URL",
        )
    if status in (401, 403):
        return Check(
            "reachability",
            "ok",
            f"reachable: {base_url} answered (HTTP {status} to an unsigned probe, as expected)",
        )
    return Check("reachability", "ok", f"reachable: {base_url} answered (HTTP {status})")


def clock_check(skew: float | None) -> Check:
    """The clock verdict for ``skew`` seconds (local minus server).

    The server's ``Date`` header has whole-second resolution and the request takes time, so
    up to ±2 s of measured skew is only rounding: reported as in sync, not as a skew.
    """
    if skew is None:
        return Check("clock", "warn", "the server sent no Date header to compare")
    if abs(skew) > CLOCK_WINDOW_SECONDS:
        side = "ahead of" if skew > 0 else "behind"
        return Check(
            "clock",
            "fail",
            f"local clock is {abs(skew):.0f} s {side} the server; signatures are only "
            f"accepted within ±{CLOCK_WINDOW_SECONDS:.0f} s: fix the system time (NTP)",
            ExitCode.API_ERROR,
        )
    if abs(skew) > CLOCK_WARN_SECONDS:
        return Check("clock", "warn", f"local clock differs by {skew:+.0f} s (limit ±300 s)")
    if abs(skew) <= CLOCK_SYNC_SECONDS:
        return Check("clock", "ok", "in sync with the server (±1 s)")
    return Check("clock", "ok", f"local clock differs by {skew:+.0f} s (limit ±300 s)")


def _mask(client_id: str) -> str:
    return client_id[:4] + "…" if len(client_id) > 8 else client_id


def _run_checks() -> tuple[list[Check], str | None]:
    st = state()
    checks: list[Check] = []
    try:
        client = st.client()
    except QontakError as exc:
        checks.append(Check("configuration", "fail", describe_error(exc), exit_code_for(exc)))
        for name in ("reachability", "clock", "credentials"):
            checks.append(Check(name, "skipped", "configuration is incomplete"))
        return checks, None
    # Shown without any user:password a base URL may hold (never printed, --json included).
    base_url = hide_userinfo(client.base_url)
    with client:
        checks.append(
            Check(
                "configuration",
                "ok",
                f"client id {_mask(client.settings.client_id)}, secret set, {base_url}",
            )
        )
        date_header: str | None = None
        local = time.time()
        # The unsigned probe does not send a URL's user:password either (httpx would turn
        # it into Basic auth, handing the password to whatever server answers).
        probe = httpx.URL(client.base_url + "/integrations").copy_with(username="", password="")
        try:
            with httpx.Client(timeout=st.timeout or 10.0) as http:
                started = time.time()
                resp = http.get(probe)
                local = (started + time.time()) / 2
            date_header = resp.headers.get("date")
            checks.append(reachability_check(resp, base_url))
        except httpx.HTTPError as exc:
            checks.append(
                Check(
                    "reachability",
                    "fail",
                    f"cannot reach {base_url}: {type(exc).__name__} {exc}".strip(),
                    ExitCode.API_ERROR,
                )
            )
            checks.append(Check("clock", "skipped", "server not reachable"))
            checks.append(Check("credentials", "skipped", "server not reachable"))
            return checks, base_url
        checks.append(clock_check(clock_skew(date_header, local)))
        try:
            channels = client.with_options(max_retries=0).channels.list()
            checks.append(
                Check("credentials", "ok", f"accepted; {len(channels)} WhatsApp channel(s)")
            )
        except (AuthenticationError, PermissionDeniedError) as exc:
            hint = (
                "check QONTAK_CLIENT_ID / QONTAK_CLIENT_SECRET and the clock (see above)"
                if isinstance(exc, AuthenticationError)
                else "the application lacks the qontak-chat scope"
            )
            checks.append(
                Check("credentials", "fail", f"rejected ({exc.status_code}): {hint}", ExitCode.AUTH)
            )
        except (APIStatusError, QontakError) as exc:
            checks.append(Check("credentials", "fail", str(exc), exit_code_for(exc)))
    return checks, base_url


_MARKS = {"ok": ("✔", "green"), "warn": ("!", "yellow"), "fail": ("✘", "red"),
          "skipped": ("-", "dim")}  # fmt: skip


def report_grid(checks: list[Check]) -> Table:
    """One row per check: mark, name, then the detail, wrapped to the console's width under
    itself (never folded under the mark or the name)."""
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column(no_wrap=True, min_width=13)
    grid.add_column(overflow="fold")
    for c in checks:
        mark, style = _MARKS[c.status]
        detail = Text(c.detail, style="red" if c.status == "fail" else "")
        grid.add_row(Text(mark, style=style), Text(c.name, style=style), detail)
    return grid


def register(app: typer.Typer) -> None:
    """Add ``doctor`` to ``app``."""

    @app.command("doctor")
    @command
    def doctor() -> None:
        """Check configuration, reachability, clock skew and that the credentials work.

        JSON: {"ok": bool, "base_url": str|null, "checks": [{"name", "status", "detail"}]}.
        """
        st = state()
        checks, base_url = _run_checks()
        for c in checks:  # whatever a check quoted (an exception, a URL) holds no secret
            c.detail = safe_text(c.detail)
        failed = [c for c in checks if c.status == "fail"]
        if st.json:
            print_json(
                {"ok": not failed, "base_url": base_url, "checks": [c.to_dict() for c in checks]}
            )
        else:
            out = console()
            out.print(report_grid(checks))
            out.print(
                Text("all good", style="bold green")
                if not failed
                else Text(f"{len(failed)} problem(s) found", style="bold red")
            )
        if failed:
            raise typer.Exit(int(failed[0].code))
