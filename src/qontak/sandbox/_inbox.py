"""The sandbox's web inbox: a WhatsApp-like page showing every message the sandbox accepted.

The page is three static files in ``qontak/sandbox/static/`` (``index.html``, ``inbox.js``,
``inbox.css``): no build step, no CDN, no external fonts, so it works offline. It polls
``GET /_sandbox/messages`` (served by the sandbox app, not here) about twice a second and
redraws what changed, so new bubbles appear and ticks turn blue while you watch.

The sandbox app mounts :func:`routes`::

    app = Starlette(routes=[*api_routes, *inbox.routes()])
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Route

from ._api import error_response

__all__ = ["STATIC_DIR", "STATIC_PREFIX", "routes"]

STATIC_DIR = Path(__file__).resolve().parent / "static"
"""Folder holding the page's files (inside the installed package)."""

STATIC_PREFIX = "/_sandbox/static"
"""URL prefix under which the files of :data:`STATIC_DIR` are served."""

_MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}

# The page only ever talks to its own origin. Images may come from anywhere (template
# examples point at public CDNs); when they cannot load offline the page shows a placeholder.
_CSP = (
    "default-src 'none'; "
    "script-src 'self'; "
    "style-src 'self'; "
    "connect-src 'self'; "
    "img-src * data: blob:; "
    "base-uri 'none'; "
    "form-action 'none'; "
    "frame-ancestors 'none'"
)

_SECURITY_HEADERS = {
    "Content-Security-Policy": _CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _static_file(name: str) -> Path | None:
    """Return the file ``name`` inside :data:`STATIC_DIR`, or None if it is not one of ours.

    Only regular files directly under the folder or below it are served; ``..``, absolute
    paths, unknown extensions and names no file can have (a NUL byte, too long for the file
    system) give None, so the caller answers 404 rather than 500.
    """
    if not name or name.startswith(("/", "\\")) or "\\" in name or "\x00" in name:
        return None
    try:
        candidate = (STATIC_DIR / name).resolve()
        if STATIC_DIR not in candidate.parents or candidate.suffix not in _MEDIA_TYPES:
            return None
        return candidate if candidate.is_file() else None
    except (OSError, ValueError):
        return None


def _serve(path: Path) -> Response:
    """A response for one static file, with its media type and the page's security headers."""
    return FileResponse(path, media_type=_MEDIA_TYPES[path.suffix], headers=_SECURITY_HEADERS)


async def index(request: Request) -> Response:
    """``GET /``: the inbox page."""
    page = _static_file("index.html")
    if page is None:  # pragma: no cover - only if the package was installed without its data
        return error_response(500, ["inbox page missing from the installed package"])
    return _serve(page)


async def static(request: Request) -> Response:
    """``GET /_sandbox/static/{path}``: the page's scripts, styles and icons."""
    found = _static_file(str(request.path_params["path"]))
    if found is None:
        return error_response(404, ["Not Found"])
    return _serve(found)


def routes() -> list[BaseRoute]:
    """The inbox's routes, for the sandbox app to mount: ``GET /`` and the static files."""
    return [
        Route("/", index, methods=["GET", "HEAD"], name="inbox"),
        Route(STATIC_PREFIX + "/{path:path}", static, methods=["GET", "HEAD"], name="inbox_static"),
    ]
