"""Admin routes under ``/_sandbox``: ground truth, reset, faults, uploaded files.

These routes exist for tests and the web inbox; faults never apply here. Who may call them
(:class:`AdminGuard`, in front of every route that is not the Qontak API):

- **On loopback** (the default) they need no credentials, but the request's ``Host`` must be
  a loopback name or address (``localhost``, ``*.localhost``, ``127.0.0.0/8``, ``::1``), the
  name the in-process transports use (``sandbox.local``), a configured name
  (:attr:`SandboxConfig.allowed_hosts`, the host of ``public_url``) or the host the sandbox
  was told to serve on (``--host``, ``run_in_thread(host=…)``); anything else is a 403. A page
  using DNS rebinding reaches the sandbox under its own name, so it is refused here (the
  ``Origin`` check below compares with ``Host``, which that page controls). The same goes
  for the inbox page, its static files and any other path outside the API: nothing of the
  sandbox's own answers to a name it was not given. The API routes are left to the HMAC
  gateway, which a page cannot pass (see :meth:`AdminGuard.__call__`).
- **Beyond loopback** (:attr:`SandboxConfig.admin_token` set, ``qontak sandbox
  --allow-remote``) every admin route and the inbox page need the token, as
  ``Authorization: Bearer <token>`` or as the cookie the inbox link (``/?token=<token>``)
  sets; 401 otherwise. ``Host`` is not checked then: the token is what guards the routes.

- ``GET  /_sandbox/messages[?cursor=<n>][&limit=<n>]`` → ``{"data": [MESSAGE, …], "next":
  <n> | null}``: accepted messages, oldest first, a page of at most ``limit`` (default and
  most :data:`MESSAGES_PAGE`); ``next`` is the ``cursor`` of the following page, null on the
  last one. ``?after=<seq>`` is the inbox's change feed instead (:mod:`._feed`).
- ``POST /_sandbox/reset`` → forget traffic (broadcasts, messages, uploads, limits, fault
  sequence); body ``{"full": true}`` also reloads channels, templates and credentials from
  the seed.
- ``GET  /_sandbox/faults`` → ``{"data": {<settings>, "events": [...], "events_dropped": n}}``:
  the latest :data:`~._faults.MAX_FAULT_EVENTS` requests a fault hit, and how many older
  ones were forgotten.
- ``POST /_sandbox/faults`` with ``{"spec": "seed=1,error_before=0.1"}`` or the settings as a
  JSON object (missing keys take their defaults) → the new settings; the random sequence
  restarts from the seed.
- ``GET  /_sandbox/files/{id}/{filename}`` → a file stored by ``POST /file_uploader``.

**Cross-site requests.** The routes are unauthenticated, so a page on another site open in
the same browser must not be able to drive them. Every admin ``POST`` therefore needs
``Content-Type: application/json`` (415 otherwise; a cross-site page cannot send that
without a CORS preflight, which the sandbox never approves) and, when the request carries an
``Origin`` header (browsers always send one on POST), that origin's host and port must be
the request's own ``Host`` (403 otherwise). Scripts and test clients send no ``Origin`` and
are unaffected: ``curl -X POST -H 'Content-Type: application/json' -d '{}' …/_sandbox/reset``.
Bodies are strict JSON (:mod:`._json`) of at most :data:`ADMIN_BODY_LIMIT` bytes (413 as soon
as a body passes it, chunked or not); fault settings of the wrong type are a 400. Every
error, a 404 or 405 of a path no route serves included, is the sandbox's JSON envelope
``{"status": "error", "error": {"code": <status>, "messages": [<text>]}}``.

**Uploaded files** are whatever a client chose to upload, served on the inbox's origin, so
they are served inertly: always ``X-Content-Type-Options: nosniff`` and a
``Content-Security-Policy`` without script; only the media WhatsApp carries and browsers
display safely (JPEG, PNG, WebP, MP4, 3GPP, any ``audio/*``, PDF, plain text) keep their type
and ``Content-Disposition: inline``; anything else (HTML, SVG, XML, script…) is
``application/octet-stream`` with ``Content-Disposition: attachment``. They are read from
the upload folder on disk (:mod:`._uploads`), never held in memory.
"""

from __future__ import annotations

import hmac
import ipaddress
import re
from dataclasses import fields
from http.cookies import SimpleCookie
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, urlsplit

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ._api import error_response
from ._config import FaultConfig
from ._faults import API_PREFIX
from ._inbox import STATIC_PREFIX
from ._json import BodyTooLarge, InvalidJson, parse_json, read_body
from ._views import ground_truth

if TYPE_CHECKING:
    from . import Sandbox

__all__ = [
    "ADMIN_BODY_LIMIT",
    "ADMIN_COOKIE",
    "MESSAGES_PAGE",
    "AdminGuard",
    "admin_path",
    "admin_routes",
    "host_is_local",
    "host_name",
]

#: Largest body an admin route reads (its settings fit in a few hundred bytes).
ADMIN_BODY_LIMIT = 64 * 1024

#: Most messages one ``GET /_sandbox/messages`` (without ``after``) answers with.
MESSAGES_PAGE = 1000

#: Cookie holding the admin token for the inbox page (set by the ``/?token=`` link).
ADMIN_COOKIE = "qontak_sandbox_admin"

#: The host name of in-process clients (:mod:`qontak.testing`): no socket, nothing to rebind.
IN_PROCESS_HOST = "sandbox.local"


def host_is_local(name: str) -> bool:
    """Whether a host name or address always means this machine (loopback)."""
    name = name.strip("[]").rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True  # RFC 6761: resolvers and browsers keep these on loopback
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def admin_path(path: str) -> bool:
    """Whether ``path`` is one of the ``/_sandbox`` routes (its static files included)."""
    return path == "/_sandbox" or path.startswith("/_sandbox/")


def host_name(host_header: str) -> str | None:
    """The name in a ``Host`` value or URL authority (no port, lower case, no final dot)."""
    try:
        name = urlsplit("//" + host_header).hostname
    except ValueError:
        return None
    return name.rstrip(".").lower() if name else None


class AdminGuard:
    """ASGI layer: only local ``Host`` names on the sandbox's own pages, or the admin token
    (on admin routes and the inbox page) when one is set."""

    def __init__(self, app: ASGIApp, *, token: str | None, allowed_hosts: set[str]) -> None:
        self.app = app
        self.token = token
        # The sandbox's own set (names in lower case, no trailing dot): serving on another
        # host later adds to it.
        self.allowed = allowed_hosts

    def _host_allowed(self, host_header: str | None) -> bool:
        name = host_name(host_header or "")
        if name is None:
            return False
        return name == IN_PROCESS_HOST or name in self.allowed or host_is_local(name)

    def _token_matches(self, value: str | None) -> bool:
        assert self.token is not None
        return value is not None and hmac.compare_digest(value.encode(), self.token.encode())

    def _has_token(self, headers: Headers) -> bool:
        scheme, _, value = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and self._token_matches(value.strip()):
            return True
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except Exception:  # a malformed cookie header is just no token
            return False
        morsel = cookie.get(ADMIN_COOKIE)
        return self._token_matches(morsel.value if morsel else None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse a request for the sandbox's own pages that is not allowed; pass API
        requests (and everything allowed) through."""
        path = scope["path"] if scope["type"] == "http" else ""
        if not path or path.startswith(API_PREFIX):
            # The Qontak API routes are not checked here. Each needs an HMAC signature over
            # the ``Date`` header (the gateway, behind this layer), and ``Date`` is a header
            # name browsers forbid page scripts to set (fetch/XHR "forbidden request-header
            # names"), so a DNS-rebinding page cannot sign a request even with the
            # well-known default secret; beyond loopback the credentials are fresh random
            # ones anyway. A Host check there would only refuse real clients that reach
            # loopback under a name of their own (the machine's host name in /etc/hosts, an
            # alias, a container on the host network).
            await self.app(scope, receive, send)
            return
        static = path.startswith(STATIC_PREFIX + "/")
        # Beyond loopback, the token guards the admin routes and the inbox page; the page's
        # scripts and styles are no secret (the same files ship in the package).
        needs_token = self.token is not None and not static and (admin_path(path) or path == "/")
        if self.token is not None and not needs_token:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        refused: Response | None = None
        if self.token is not None:
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            given = query.get("token", [None])[0]
            if path == "/" and given is not None and self._token_matches(given):
                # The printed inbox link: keep the token in a cookie the page's own requests
                # carry (never a cross-site one), and take it out of the address bar.
                refused = Response(status_code=303, headers={"Location": "/"})
                refused.set_cookie(ADMIN_COOKIE, self.token, httponly=True, samesite="strict")
            elif not self._has_token(headers):
                if path == "/":
                    text = "Open the inbox with the link qontak sandbox printed (it has the token)."
                    refused = _error(401, text)
                else:
                    refused = _error(401, "Admin token required")
                refused.headers["WWW-Authenticate"] = "Bearer"
        elif not self._host_allowed(headers.get("host")):
            # On loopback every page of the sandbox's own (admin routes, the inbox page, its
            # files, a 404) answers loopback names only: a rebinding page gets nothing, and
            # a browser that reached the sandbox under another name sees why at once rather
            # than an inbox whose every poll is refused.
            refused = _error(403, "Host not allowed: the sandbox answers on loopback names only")
        if refused is not None:
            await refused(scope, receive, send)
            return
        await self.app(scope, receive, send)


#: Uploaded types served as themselves: what WhatsApp headers carry and what a browser shows
#: without ever interpreting it as a document that runs script.
_INLINE_TYPES = frozenset(
    {
        "image/jpeg",
        "image/png",
        "image/webp",
        "video/mp4",
        "video/3gpp",
        "application/pdf",
        "text/plain",
    }
)
_AUDIO = re.compile(r"^audio/[a-z0-9][a-z0-9.+-]*$")

#: No script, ever; an image or a video opened in its own tab is a document that loads
#: itself, hence img-src/media-src. Chromium's PDF viewer works under this policy too
#: (checked in ``tests/sandbox/test_uploads_browser.py``).
_FILE_CSP = "default-src 'none'; img-src 'self'; media-src 'self'"


def _file_headers(content_type: str, filename: str) -> tuple[str, dict[str, str]]:
    """The media type and headers to serve one uploaded file with."""
    media = content_type.split(";", 1)[0].strip().lower()
    # RFC 5987 form only: the client-chosen name can never end the header value early.
    name = "filename*=UTF-8''" + quote(filename, safe="")
    if media in _INLINE_TYPES or _AUDIO.match(media):
        disposition = f"inline; {name}"
    else:
        media, disposition = "application/octet-stream", f"attachment; {name}"
    headers = {
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": _FILE_CSP,
        "Content-Disposition": disposition,
    }
    return media, headers


def _error(status: int, text: str) -> JSONResponse:
    return error_response(status, [text])


def _bad(text: str) -> JSONResponse:
    return _error(400, text)


def _host_port(netloc: str, scheme: str) -> tuple[str, int] | None:
    try:
        parts = urlsplit("//" + netloc)
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname:
        return None
    return parts.hostname.lower(), port or (443 if scheme == "https" else 80)


def _refuse_cross_site(request: Request) -> Response | None:
    """403/415 for a POST a page on another site could have sent; None when it is fine."""
    origin = request.headers.get("origin")
    if origin is not None:
        parts = urlsplit(origin)
        # "null" (sandboxed frames, file: pages) has no scheme and never matches.
        theirs = _host_port(parts.netloc, parts.scheme) if parts.scheme else None
        ours = _host_port(request.headers.get("host", ""), request.url.scheme)
        if theirs is None or theirs != ours:
            return _error(403, "Cross-origin request refused")
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != "application/json":
        return _error(415, "Content-Type must be application/json")
    return None


async def _json_object(request: Request) -> dict[str, Any] | None:
    """The body as a JSON object; None when it is not one; BodyTooLarge past the limit."""
    raw = await read_body(request, ADMIN_BODY_LIMIT)
    if not raw.strip():
        return {}
    try:
        value = parse_json(raw)
    except InvalidJson:
        return None
    return value if isinstance(value, dict) else None


def _fault_config(body: dict[str, Any]) -> FaultConfig:
    """Settings from a ``POST /_sandbox/faults`` body; TypeError/ValueError with the reason."""
    if "spec" in body:
        spec = body["spec"]
        if not isinstance(spec, str):
            raise TypeError(f"spec must be a string, not {spec!r}")
        return FaultConfig.parse(spec)
    known = [f.name for f in fields(FaultConfig)]
    for key in body:
        if key not in known:
            raise TypeError(f"unknown fault setting {key!r}; known: {', '.join(known)}")
    return FaultConfig(**body)


def admin_routes(sandbox: Sandbox) -> list[Route]:
    """The ``/_sandbox`` routes of one sandbox."""

    def snapshot(cursor: int, size: int) -> Response:
        rows, following = sandbox.store.messages_page(cursor, size)
        now, delays = sandbox.now(), sandbox.config.delivery_delays
        data = [ground_truth(row, now, delays) for row in rows]
        return JSONResponse({"data": data, "next": following})

    async def messages(request: Request) -> Response:
        # ?after=<seq>: the inbox's incremental feed (._feed); without it, every message in
        # pages (one page of everything used to be 62 MB of JSON at 50,000 messages).
        from ._api import offload
        from ._feed import DEFAULT_FEED_LIMIT, inbox_feed

        params = request.query_params
        if "after" not in params:
            try:
                cursor = int(params.get("cursor") or 0)
                size = int(params.get("limit") or MESSAGES_PAGE)
            except ValueError:
                cursor = size = -1
            if not 0 <= cursor < 2**63 or size < 1:
                return _bad("cursor must be a whole number >= 0 and limit one >= 1")
            return await offload(snapshot, cursor, min(size, MESSAGES_PAGE))
        try:
            after, limit = int(params["after"]), int(params.get("limit") or DEFAULT_FEED_LIMIT)
        except ValueError:
            after = limit = -1
        if not 0 <= after < 2**63 or limit < 1:
            return _bad("after must be a whole number >= 0 and limit one >= 1")
        feed = params.get("feed") or None
        body = await offload(inbox_feed, sandbox, after, limit, feed)
        return Response(body, media_type="application/json")

    async def reset(request: Request) -> Response:
        refused = _refuse_cross_site(request)
        if refused is not None:
            return refused
        try:
            body = await _json_object(request)
        except BodyTooLarge:
            return _error(413, "Request Entity Too Large")
        if body is None:
            return _bad("Invalid JSON payload")
        full = body.get("full", False)
        if not isinstance(full, bool):
            return _bad("full must be true or false")
        sandbox.reset(full=full)
        return JSONResponse({"status": "success"})

    def faults_view() -> dict[str, Any]:
        return {
            **sandbox.faults.config.to_dict(),
            "events": [e.to_dict() for e in sandbox.faults.events],
            "events_dropped": sandbox.faults.events_dropped,
        }

    async def get_faults(request: Request) -> Response:
        return JSONResponse({"data": faults_view()})

    async def post_faults(request: Request) -> Response:
        refused = _refuse_cross_site(request)
        if refused is not None:
            return refused
        try:
            body = await _json_object(request)
        except BodyTooLarge:
            return _error(413, "Request Entity Too Large")
        if body is None:
            return _bad("Invalid JSON payload")
        try:
            config = _fault_config(body)
        except (TypeError, ValueError) as exc:
            return _bad(str(exc))
        sandbox.set_faults(config)
        return JSONResponse({"data": faults_view()})

    async def file(request: Request) -> Response:
        upload = sandbox.store.get_upload(request.path_params["id"])
        path = None if upload is None else sandbox.uploads.path(upload)
        if upload is None or path is None:
            return _error(404, "Not Found")
        media, headers = _file_headers(upload.content_type, upload.filename)
        return FileResponse(path, media_type=media, headers=headers)

    return [
        Route("/_sandbox/messages", messages, methods=["GET"]),
        Route("/_sandbox/reset", reset, methods=["POST"]),
        Route("/_sandbox/faults", get_faults, methods=["GET"]),
        Route("/_sandbox/faults", post_faults, methods=["POST"]),
        Route("/_sandbox/files/{id}/{filename:path}", file, methods=["GET"]),
    ]
