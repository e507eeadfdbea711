"""Admin routes under ``/_sandbox``: ground truth, reset, faults, uploaded files.

No authentication: the sandbox binds to loopback and these routes exist for tests and the
web inbox. Faults never apply here.

- ``GET  /_sandbox/messages`` → ``{"data": [MESSAGE, …]}``, every accepted message, oldest first.
- ``POST /_sandbox/reset`` → forget traffic (broadcasts, messages, uploads, limits, fault
  sequence); body ``{"full": true}`` also reloads channels, templates and credentials from
  the seed.
- ``GET  /_sandbox/faults`` → ``{"data": {<settings>, "events": [...]}}``.
- ``POST /_sandbox/faults`` with ``{"spec": "seed=1,error_before=0.1"}`` or the settings as a
  JSON object (missing keys take their defaults) → the new settings; the random sequence
  restarts from the seed.
- ``GET  /_sandbox/files/{id}/{filename}`` → a file stored by ``POST /file_uploader``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ._config import FaultConfig

if TYPE_CHECKING:
    from . import Sandbox

__all__ = ["admin_routes"]


def _bad(text: str) -> JSONResponse:
    return JSONResponse({"status": "error", "error": {"code": 400, "messages": [text]}}, 400)


async def _json_object(request: Request) -> dict[str, Any] | None:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def admin_routes(sandbox: Sandbox) -> list[Route]:
    """The ``/_sandbox`` routes of one sandbox."""

    async def messages(request: Request) -> Response:
        return JSONResponse({"data": sandbox.messages()})

    async def reset(request: Request) -> Response:
        body = await _json_object(request)
        if body is None:
            return _bad("Invalid JSON payload")
        sandbox.reset(full=bool(body.get("full", False)))
        return JSONResponse({"status": "success"})

    def faults_view() -> dict[str, Any]:
        return {
            **sandbox.faults.config.to_dict(),
            "events": [e.to_dict() for e in sandbox.faults.events],
        }

    async def get_faults(request: Request) -> Response:
        return JSONResponse({"data": faults_view()})

    async def post_faults(request: Request) -> Response:
        body = await _json_object(request)
        if body is None:
            return _bad("Invalid JSON payload")
        try:
            spec = body.get("spec")
            config = FaultConfig.parse(str(spec)) if spec is not None else FaultConfig(**body)
        except (TypeError, ValueError) as exc:
            return _bad(str(exc))
        sandbox.set_faults(config)
        return JSONResponse({"data": faults_view()})

    async def file(request: Request) -> Response:
        upload = sandbox.store.get_upload(request.path_params["id"])
        if upload is None:
            return Response("Not Found", status_code=404, media_type="text/plain")
        return Response(upload.data, media_type=upload.content_type)

    return [
        Route("/_sandbox/messages", messages, methods=["GET"]),
        Route("/_sandbox/reset", reset, methods=["POST"]),
        Route("/_sandbox/faults", get_faults, methods=["GET"]),
        Route("/_sandbox/faults", post_faults, methods=["POST"]),
        Route("/_sandbox/files/{id}/{filename:path}", file, methods=["GET"]),
    ]
