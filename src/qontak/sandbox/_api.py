"""Handlers of the Qontak API routes (``/qontak/chat/v1/...``), behind the gateway layer.

By the time a handler runs, the request is authenticated and within limits
(:mod:`._gateway`). Handlers answer in Qontak's envelopes: ``{"status":"success","data":…,
"meta":{"pagination":…}}`` for lists, ``{"status":"success","data":…}`` for one object,
``{"status":"error","error":{"code":…,"messages":[…]}}`` for errors.

List filters:

- ``GET /integrations``: ``target_channel`` (or ``target_channel[]``), ``query`` (account
  name contains).
- ``GET /templates/whatsapp``: ``query`` (name contains), ``status``, ``statuses[]``,
  ``category[]``, ``excluded_category[]``, ``language``, ``hsm_chat`` (true: only names
  ending ``_hsm_chat_expired``, Qontak's naming for HSM chat templates; false: all others),
  ``order_direction``.
- ``GET /broadcasts/whatsapp``: ``query`` (name contains), ``start_date``/``end_date``
  (``YYYY-MM-DD`` or ISO 8601, inclusive, on ``created_at`` in UTC), ``target_channel[]``,
  ``execute_types[]``, ``order_direction`` (default ``desc``: newest first).
- ``GET /broadcasts/{id}/whatsapp/log``: oldest first.

All of them paginate as described in :mod:`._pagination`, filtered, counted and cut in SQL
(:mod:`._store`), so a request costs its page, not the size of the store.

**Off the event loop.** Each handler does its SQLite work, and the JSON decoding and view
building around it, in one call to :func:`anyio.to_thread.run_sync`: one thread hop per
request, whichever event loop serves the app (uvicorn's, or the in-process transports'). The
store serialises SQL on its own lock and holds it only for the SQL, so a long page (or the
webhook poller) never stalls the loop that accepts the other requests. anyio's shared worker
pool rather than one dedicated thread: the pool belongs to whichever loop runs the app (a
sandbox may be served by uvicorn and an in-process transport at once), needs no start/stop
of its own, and lets the decoding and rendering of two requests overlap while SQL stays
one-at-a-time under the lock.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TypeVar

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ._catalog import CATEGORIES, LANGUAGE, LANGUAGES
from ._delivery import error_for_number, iso, new_wamid
from ._faults import API_PREFIX
from ._json import InvalidJson, parse_json
from ._pagination import PageRequest, PaginationError, page_request, paginate
from ._store import BroadcastFilter, MessageRow, ObjectFilter
from ._uploads import receive_upload
from ._validation import SendRejected, ValidSend, check_send
from ._views import broadcast_view, log_row

if TYPE_CHECKING:
    from . import Sandbox

__all__ = ["api_routes", "error_response", "offload", "success", "synthetic_sends"]

R = TypeVar("R")


#: Event loops of real servers (uvicorn), marked by the app's lifespan. In-process
#: transports never run a lifespan: there the caller waits for the answer anyway, and a
#: thread hop per request would cost more than the store work it moves.
_SERVED_LOOPS: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()


def mark_served_loop() -> None:
    """Called by the lifespan: store work on this loop goes to worker threads."""
    _SERVED_LOOPS.add(asyncio.get_running_loop())


async def offload(fn: Callable[..., R], *args: Any) -> R:
    """Run blocking store work in a worker thread when a server's event loop must stay free
    for other clients; in process, run it directly."""
    try:
        served = asyncio.get_running_loop() in _SERVED_LOOPS
    except RuntimeError:  # not asyncio (trio): be safe
        served = True
    if not served:
        return fn(*args)
    return await anyio.to_thread.run_sync(functools.partial(fn, *args))


def success(data: Any, meta: dict[str, Any] | None = None, status: int = 200) -> JSONResponse:
    """Qontak's success envelope."""
    body: dict[str, Any] = {"status": "success", "data": data}
    if meta is not None:
        body["meta"] = meta
    return JSONResponse(body, status_code=status)


def error_response(status: int, messages: Sequence[str]) -> JSONResponse:
    """Qontak's error envelope; ``code`` mirrors the HTTP status."""
    body = {"status": "error", "error": {"code": status, "messages": list(messages)}}
    return JSONResponse(body, status_code=status)


def _not_found() -> JSONResponse:
    return error_response(404, ["Resource not found."])


def _multi(request: Request, name: str) -> list[str]:
    """A list parameter, accepted as ``name[]=a&name[]=b`` or ``name=a``."""
    params = request.query_params
    return [v for v in [*params.getlist(f"{name}[]"), *params.getlist(name)] if v]


def _flag(value: str | None) -> bool | None:
    if value is None or value == "":
        return None
    return value.lower() in ("1", "true", "yes")


def _parse_day(value: str, *, end: bool) -> float:
    """``YYYY-MM-DD`` (whole day) or an ISO 8601 instant → epoch seconds."""
    text = value.strip().replace("Z", "+00:00")
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    if len(value.strip()) == 10 and end:
        return moment.timestamp() + 86400 - 1e-6
    return moment.timestamp()


def _pages(request: Request) -> PageRequest | Response:
    try:
        return page_request(request.query_params)
    except PaginationError as exc:
        return error_response(422, [str(exc)])


class _Api:
    """The API handlers, bound to one sandbox."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.store = sandbox.store

    def _page(self, request: Request, items: Sequence[Any]) -> JSONResponse:
        try:
            page, meta = paginate(items, request.query_params)
        except PaginationError as exc:
            return error_response(422, [str(exc)])
        return success(page, meta)

    async def _objects(self, request: Request, table: str, filters: ObjectFilter) -> Response:
        pages = _pages(request)
        if isinstance(pages, Response):
            return pages
        # Channels and templates are few: plain positions (a keyset anchor is not theirs).
        count = pages.end - pages.start
        items, total = await offload(self.store.page_objects, table, filters, pages.start, count)
        return success(items, pages.meta(total))

    # -- integrations ---------------------------------------------------------------------
    async def integrations(self, request: Request) -> Response:
        """``GET /integrations``"""
        channels = _multi(request, "target_channel")
        query = (request.query_params.get("query") or "").lower()
        filters = ObjectFilter(
            exact={"$.target_channel": channels} if channels else {},
            contains={"$.settings.account_name": query} if query else {},
        )
        return await self._objects(request, "channels", filters)

    async def integration(self, request: Request) -> Response:
        """``GET /integrations/{id}``"""
        channel = await offload(self.store.get_object, "channels", request.path_params["id"])
        return _not_found() if channel is None else success(channel)

    # -- templates ------------------------------------------------------------------------
    async def templates(self, request: Request) -> Response:
        """``GET /templates/whatsapp``"""
        params = request.query_params
        query = (params.get("query") or "").lower()
        statuses = _multi(request, "statuses") + _multi(request, "status")
        categories = _multi(request, "category")
        excluded = _multi(request, "excluded_category")
        language = params.get("language")
        hsm = _flag(params.get("hsm_chat"))
        equals: dict[str, Sequence[str]] = {}
        if statuses:
            equals["$.status"] = statuses
        if categories:
            equals["$.category"] = categories
        filters = ObjectFilter(
            equals=equals,
            excluded={"$.category": excluded} if excluded else {},
            contains={"$.name": query} if query else {},
            exact={"$.language": [language]} if language else {},
            suffix=None if hsm is None else ("$.name", "_hsm_chat_expired", hsm),
            newest_first=params.get("order_direction") == "desc",
        )
        return await self._objects(request, "templates", filters)

    async def template(self, request: Request) -> Response:
        """``GET /templates/{id}/whatsapp``"""
        template = await offload(self.store.get_object, "templates", request.path_params["id"])
        return _not_found() if template is None else success(template)

    async def categories(self, request: Request) -> Response:
        """``GET /templates/category``"""
        return success(CATEGORIES)

    async def language(self, request: Request) -> Response:
        """``GET /templates/language``"""
        return success(LANGUAGE)

    async def languages(self, request: Request) -> Response:
        """``GET /templates/languages``"""
        items = LANGUAGES
        query = (request.query_params.get("query") or "").lower()
        if query:
            items = [x for x in items if query in x["language"].lower() or query == x["code"]]
        return self._page(request, items)

    # -- sending --------------------------------------------------------------------------
    async def _read_body(self, request: Request) -> bytes | Response:
        limit = self.sandbox.config.max_body_bytes
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            return error_response(413, ["Request Entity Too Large"])
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                return error_response(413, ["Request Entity Too Large"])
            chunks.append(chunk)
        return b"".join(chunks)

    async def send_direct(self, request: Request) -> Response:
        """``POST /broadcasts/whatsapp/direct``: validate, store, answer 201."""
        raw = await self._read_body(request)
        if isinstance(raw, Response):
            return raw
        client_id: str = request.state.client_id
        return await offload(self._send, raw, client_id)

    def _send(self, raw: bytes, client_id: str) -> Response:
        try:
            payload = parse_json(raw)
        except InvalidJson:
            return error_response(400, ["Invalid JSON payload"])
        store = self.store
        try:
            valid = check_send(
                payload,
                find_template=lambda i: store.get_object("templates", i),
                find_channel=lambda i: store.get_object("channels", i),
            )
        except SendRejected as exc:
            return error_response(exc.status, exc.messages)
        broadcast = self.sandbox.record_send(valid, client_id, payload)
        return success(broadcast, status=201)

    # -- broadcasts -----------------------------------------------------------------------
    async def broadcasts(self, request: Request) -> Response:
        """``GET /broadcasts/whatsapp``"""
        params = request.query_params
        try:
            since = (
                _parse_day(params["start_date"], end=False) if params.get("start_date") else None
            )
            until = _parse_day(params["end_date"], end=True) if params.get("end_date") else None
        except ValueError:
            return error_response(422, ["start_date or end_date is invalid"])
        pages = _pages(request)
        if isinstance(pages, Response):
            return pages
        filters = BroadcastFilter(
            since=since,
            until=until,
            name_contains=params.get("query") or "",
            target_channels=_multi(request, "target_channel"),
            execute_types=_multi(request, "execute_types"),
            newest_first=params.get("order_direction", "desc") != "asc",
        )
        return await offload(self._broadcast_page, filters, pages)

    def _broadcast_page(self, filters: BroadcastFilter, pages: PageRequest) -> Response:
        stored, total, seqs = self.store.page_broadcasts(filters, pages)
        rows = self.store.messages_of([b["id"] for b in stored])
        now = self.sandbox.now()
        delays = self.sandbox.config.delivery_delays
        views = [broadcast_view(b, rows[b["id"]], now, delays, detail=False) for b in stored]
        return success(views, pages.meta(total, seqs))

    async def broadcast(self, request: Request) -> Response:
        """``GET /broadcasts/{id}/whatsapp``"""
        return await offload(self._broadcast, request.path_params["id"])

    def _broadcast(self, broadcast_id: str) -> Response:
        stored = self.store.get_broadcast(broadcast_id)
        if stored is None:
            return _not_found()
        return success(self.sandbox.broadcast_view(stored, detail=True))

    async def broadcast_log(self, request: Request) -> Response:
        """``GET /broadcasts/{id}/whatsapp/log``"""
        pages = _pages(request)
        if isinstance(pages, Response):
            return pages
        return await offload(self._log_page, request.path_params["id"], pages)

    def _log_page(self, broadcast_id: str, pages: PageRequest) -> Response:
        if self.store.get_broadcast(broadcast_id) is None:
            return _not_found()
        rows, total, seqs = self.store.page_messages(broadcast_id, pages)
        now = self.sandbox.now()
        delays = self.sandbox.config.delivery_delays
        org = self.sandbox.organization_id
        return success([log_row(r, now, delays, org) for r in rows], pages.meta(total, seqs))

    # -- uploads --------------------------------------------------------------------------
    async def upload(self, request: Request) -> Response:
        """``POST /file_uploader``: keep the file, answer with a URL the sandbox serves."""
        return await receive_upload(request, self.sandbox)


def api_routes(sandbox: Sandbox) -> list[Route]:
    """The Qontak API routes of one sandbox."""
    api = _Api(sandbox)
    p = API_PREFIX

    def get(path: str, endpoint: Callable[[Request], Any]) -> Route:
        return Route(p + path, endpoint, methods=["GET"])

    return [
        get("/integrations", api.integrations),
        get("/integrations/{id}", api.integration),
        get("/templates/whatsapp", api.templates),
        get("/templates/category", api.categories),
        get("/templates/language", api.language),
        get("/templates/languages", api.languages),
        get("/templates/{id}/whatsapp", api.template),
        Route(p + "/broadcasts/whatsapp/direct", api.send_direct, methods=["POST"]),
        get("/broadcasts/whatsapp", api.broadcasts),
        get("/broadcasts/{id}/whatsapp", api.broadcast),
        get("/broadcasts/{id}/whatsapp/log", api.broadcast_log),
        Route(p + "/file_uploader", api.upload, methods=["POST"]),
    ]


def new_message(valid: ValidSend, broadcast_id: str, now: float) -> MessageRow:
    """The stored message for an accepted send (status then follows from the clock)."""
    error = error_for_number(valid.to_number)
    return MessageRow(
        id=str(uuid.uuid4()),
        broadcast_id=broadcast_id,
        accepted_at=now,
        to_number=valid.to_number,
        to_name=valid.to_name,
        channel_integration_id=str(valid.channel["id"]),
        wamid=new_wamid(valid.to_number),
        error_code=str(error.code) if error else None,
        template=valid.template,
        parameters=valid.parameters,
        rendered=valid.rendered,
    )


def broadcast_record(
    valid: ValidSend,
    *,
    broadcast_id: str,
    payload: dict[str, Any],
    organization_id: str,
    sender: tuple[str, str],
    now: float,
) -> dict[str, Any]:
    """The stored broadcast object, keys in the order of the OpenAPI example."""
    params: dict[str, Any] = valid.parameters
    header: dict[str, Any] = {}
    if valid.rendered.get("header") and isinstance(params.get("header"), dict):
        header = {"format": params["header"].get("format"), "params": valid.header_values}
    settings = valid.channel.get("settings") or {}
    name = payload.get("name")
    return {
        "id": broadcast_id,
        "name": name if isinstance(name, str) and name else valid.to_name,
        "organization_id": organization_id,
        "channel_integration_id": valid.channel["id"],
        "contact_list_id": None,
        "contact_id": str(uuid.uuid5(uuid.NAMESPACE_URL, "tel:" + valid.to_number)),
        "target_channel": valid.channel.get("target_channel"),
        "send_at": iso(now),
        "execute_status": "done",
        "execute_type": "immediately",
        "parameters": {
            "header": header,
            "body": {str(item["key"]): item["value"] for item in params.get("body") or []},
            "buttons": {str(item["index"]): item["value"] for item in params.get("buttons") or []},
        },
        "created_at": iso(now),
        "contact_extra": {},
        "message_template": valid.template,
        "division_id": None,
        "message_broadcast_error": "n/a",
        "sender_name": sender[0],
        "sender_email": sender[1],
        "channel_account_name": settings.get("account_name"),
        "channel_phone_number": str(settings.get("phone_number") or "").lstrip("+"),
    }


def synthetic_sends(
    sandbox: Sandbox,
    payload: dict[str, Any],
    count: int,
    *,
    start: float,
    step: float,
    client_id: str,
) -> Iterator[tuple[dict[str, Any], str, MessageRow]]:
    """``count`` accepted sends of ``payload`` (validated once, as the API would), accepted
    ``step`` seconds apart from ``start``, numbers and names varied; for
    :meth:`Store.add_sends <._store.Store.add_sends>` to fill a store fast (benchmarks, tests).
    """
    store = sandbox.store
    valid = check_send(
        payload,
        find_template=lambda i: store.get_object("templates", i),
        find_channel=lambda i: store.get_object("channels", i),
    )
    organization_id = sandbox.organization_id
    sender = store.sender(client_id)
    base = int(valid.to_number[:-6] + "000000")
    for i in range(count):
        number = str(base + 200_000 + i % 700_000)  # never a magic (error) number
        one = replace(valid, to_number=number, to_name=f"{valid.to_name} {i}")
        at = start + i * step
        broadcast_id = str(uuid.uuid4())
        record = broadcast_record(
            one,
            broadcast_id=broadcast_id,
            payload={**payload, "name": f"{payload.get('name') or 'campaign'} {i}"},
            organization_id=organization_id,
            sender=sender,
            now=at,
        )
        yield record, client_id, new_message(one, broadcast_id, at)
