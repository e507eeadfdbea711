"""The one request path: build -> limit -> sign -> send -> classify -> retry.

Every decision (how to encode the query, what to sign, how to read an answer, what to
retry and for how long) lives in :class:`Pipeline` as plain methods. Only the I/O loop is
written twice, in :meth:`Pipeline.run_sync` and :meth:`Pipeline.run_async`.
"""

from __future__ import annotations

import functools
import json as jsonlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, cast
from urllib.parse import quote

import anyio
import httpx

from . import _auth
from ._checks import check_id, check_query, check_retries, check_timeout
from ._config import Settings
from ._logging import log_kv, register_secret
from ._ratelimit import SCOPE_ALL, SCOPE_SEND, RateLimiter, parse_reset, parse_retry_after
from ._retry import Outcome, RetryPolicy, classify_exception, classify_status, is_transport_error
from ._version import __version__
from .errors import (
    APIConnectionError,
    APITimeoutError,
    DeliveryUnknownError,
    QontakError,
    ValidationError,
    status_error,
)
from .models import ResponseInfo

__all__ = [
    "DEFAULT_TIMEOUT",
    "ApiRequest",
    "ApiResponse",
    "Pipeline",
    "encode_query",
    "json_body",
    "path_segment",
]

#: Connect within 5 s, and give up on a whole read/write after 30 s.
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
USER_AGENT = f"qontak-python/{__version__}"

Params = Mapping[str, Any]


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def encode_query(params: Params | None) -> str:
    """Deterministic query string: ``None`` skipped, lists as ``key[]=v``, booleans as
    ``true``/``false``, values percent-encoded (``%20`` for spaces), keys in given order.

    >>> encode_query({"statuses": ["APPROVED", "PENDING"], "query": "a b", "x": None})
    'statuses[]=APPROVED&statuses[]=PENDING&query=a%20b'
    """
    parts: list[str] = []
    for key, value in (params or {}).items():
        if value is None:
            continue
        if isinstance(value, list | tuple | set | frozenset):
            name = key if key.endswith("[]") else f"{key}[]"
            parts.extend(f"{quote(name, safe='[]')}={quote(_scalar(v), safe='')}" for v in value)
        else:
            parts.append(f"{quote(key, safe='[]')}={quote(_scalar(value), safe='')}")
    return "&".join(parts)


def path_segment(value: str, field: str = "id") -> str:
    """Percent-encode one path segment (an id) so it cannot change the path; an id that is
    not one (not text, empty, ``..``, too long…) is a ``ValidationError`` naming ``field``."""
    return quote(check_id(field, value), safe="")


def json_body(data: Any) -> bytes:
    """``data`` as a request body: JSON as ``json.dumps`` writes it, non-ASCII text kept
    as UTF-8 (byte for byte what the Node client's README examples post)."""
    try:
        return jsonlib.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:  # callers check their text first; this is the backstop
        raise ValidationError(
            "body", "contains a lone surrogate; not valid Unicode", code="invalid_text"
        ) from None


@functools.lru_cache(maxsize=512)
def _parsed_url(text: str) -> httpx.URL:
    # httpx parses a URL in pure Python (~15 µs); the same few URLs recur (every send goes
    # to one path), and an ``httpx.URL`` is immutable, so parsed ones are shared.
    return httpx.URL(text)


def _request(
    method: str,
    url: httpx.URL,
    headers: dict[str, str],
    content: bytes,
    extensions: dict[str, Any] | None,
) -> httpx.Request:
    """``httpx.Request(method, url, headers=headers, content=content)``, same headers in
    the same order, built 4× cheaper: given a ready stream httpx skips its generic header
    fix-ups, so ``Host`` and ``Content-Length`` are added here as httpx would add them."""
    raw = [(b"Host", url.netloc)]
    if not content and method in ("POST", "PUT", "PATCH"):
        raw.append((b"Content-Length", b"0"))
    raw.extend((k.encode("ascii"), v.encode("ascii")) for k, v in headers.items())
    if content:
        raw.append((b"Content-Length", str(len(content)).encode("ascii")))
    request = httpx.Request(
        method, url, headers=raw, stream=httpx.ByteStream(content), extensions=extensions
    )
    request.read()  # ``request.content`` is then set, as with ``content=``
    return request


@dataclass(frozen=True)
class ApiRequest:
    """One logical API call (which may take several attempts)."""

    method: str
    path: str
    params: Params | None = None
    json: Any = None
    files: Any = None
    idempotent: bool = True
    scope: str = SCOPE_ALL
    timeout: httpx.Timeout | float | None = None
    max_retries: int | None = None
    content: bytes | None = field(default=None, init=False, repr=False, compare=False)
    """``json`` encoded once (:func:`json_body`): what every attempt sends, and what a send's
    size rule measures."""

    def __post_init__(self) -> None:
        # Per-call options and query values come from callers: refuse bad ones before any I/O
        # (a NaN retry count never stops, a str one fails after the send was accepted).
        # (None, the default, needs no check: most calls pay nothing here.)
        if self.timeout is not None:
            check_timeout("timeout", self.timeout)
        if self.max_retries is not None:
            check_retries("max_retries", self.max_retries)
        if self.params is not None:
            check_query(self.params)
        if self.json is not None:
            # Encoded here, before any attempt: every attempt sends these same bytes.
            object.__setattr__(self, "content", json_body(self.json))


@dataclass(frozen=True)
class ApiResponse:
    """A successful answer: the decoded JSON body and its response metadata."""

    body: Any
    info: ResponseInfo

    @property
    def data(self) -> Any:
        """``body["data"]`` when the body is Qontak's envelope, else the body."""
        if isinstance(self.body, Mapping) and "data" in self.body:
            return self.body["data"]
        return self.body

    @property
    def meta(self) -> Mapping[str, Any]:
        """``body["meta"]`` or ``{}``."""
        meta: Any = self.body.get("meta") if isinstance(self.body, Mapping) else None
        return cast("Mapping[str, Any]", meta) if isinstance(meta, Mapping) else {}


@dataclass
class _Attempt:
    """What one attempt ended with."""

    outcome: Outcome
    response: httpx.Response | None = None
    error: Exception | None = None
    server_wait: float | None = None


def _decode(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except (ValueError, UnicodeDecodeError):
        return response.text


def _request_id(response: httpx.Response, body: Any) -> str | None:
    rid = response.headers.get("x-request-id")
    if rid:
        return str(rid)
    if isinstance(body, Mapping):
        meta = body.get("meta")
        if isinstance(meta, Mapping) and meta.get("log_id"):
            return str(meta["log_id"])
    return None


@dataclass
class Pipeline:
    """Builds, signs and sends requests with retries and rate limiting."""

    settings: Settings
    retry: RetryPolicy
    limiter: RateLimiter | None
    timeout: httpx.Timeout = field(default_factory=lambda: DEFAULT_TIMEOUT)
    clock: Callable[[], float] = time.time
    # Rate-limit bookkeeping runs on a monotonic clock, so a wall-clock step (NTP) neither
    # stalls the limiter nor lets a burst through; ``clock`` (wall time) signs requests.
    monotonic: Callable[[], float] = time.monotonic
    rng: random.Random = field(default_factory=random.Random)
    _default_timeout: dict[str, Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        register_secret(self.settings.client_secret.get())
        # Every attempt without its own timeout carries this one (httpx reads it as a dict).
        self._default_timeout = self.timeout.as_dict()

    def with_options(self, **changes: Any) -> Pipeline:
        """A copy with some settings changed; the limiter (and its budget) is shared."""
        return replace(self, **changes)

    # -- building and signing -------------------------------------------------------
    def build(
        self,
        req: ApiRequest,
        *,
        signed: bool = False,
        extensions: dict[str, Any] | None = None,
    ) -> httpx.Request:
        """The ``httpx.Request`` for ``req`` (exact URL bytes fixed here), unsigned unless
        ``signed``."""
        text = self.settings.base_url + req.path
        query = encode_query(req.params)
        if query:
            text = f"{text}?{query}"
        url = _parsed_url(text)
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        content = req.content
        if content is not None:
            headers["Content-Type"] = "application/json"
        if signed:
            # Signed before the request exists: httpx re-checks every header's encoding on
            # each later update, which cost more than the HMAC itself.
            headers.update(self._signature(req.method, url))
        if req.files is not None:
            return httpx.Request(
                req.method, url, headers=headers, files=req.files, extensions=extensions
            )
        return _request(req.method, url, headers, content or b"", extensions)

    def _signature(self, method: str, url: httpx.URL) -> dict[str, str]:
        return _auth.signature_headers(
            method,
            url.raw_path.decode("ascii"),
            self.settings.client_id,
            self.settings.client_secret.get(),
            self.clock(),
        )

    def sign(self, request: httpx.Request) -> None:
        """Add ``Date`` and ``Authorization`` for this attempt, over the exact wire path."""
        request.headers.update(self._signature(request.method, request.url))

    def _timeout_ext(self, req: ApiRequest) -> dict[str, Any]:
        timeout = req.timeout
        if timeout is None:
            return {"timeout": self._default_timeout}
        if not isinstance(timeout, httpx.Timeout):
            timeout = httpx.Timeout(timeout)
        return {"timeout": timeout.as_dict()}

    def prepare(self, req: ApiRequest) -> httpx.Request:
        """Build and sign one attempt."""
        return self.build(req, signed=True, extensions=self._timeout_ext(req))

    # -- classifying -----------------------------------------------------------------
    def on_exception(self, exc: Exception) -> _Attempt:
        """Classify a transport exception.

        Only failures that provably happened before the request left count as "not sent";
        anything else (timeouts, resets, an unreadable answer…) may have reached the server.
        """
        return _Attempt(classify_exception(exc), error=exc)

    def on_response(self, req: ApiRequest, response: httpx.Response) -> _Attempt:
        """Classify a response and feed rate-limit headers back to the limiter."""
        now, mono = self.clock(), self.monotonic()
        headers = response.headers
        outcome = classify_status(response.status_code)
        server_wait: float | None = None
        if outcome is Outcome.RATE_LIMITED:
            server_wait = parse_retry_after(headers, now)
            if self.limiter is not None:
                wait = server_wait if server_wait is not None else self.retry.backoff_base
                # A longer wait than max_wait is raised to the caller, not imposed on later calls.
                self._pause(req.scope, mono + min(wait, self.retry.max_wait))
        elif headers.get("x-ratelimit-remaining", "").strip() == "0":
            reset = parse_reset(headers.get("x-ratelimit-reset"), now)
            if reset and self.limiter is not None:
                self._pause(req.scope, mono + min(reset, self.retry.max_wait))
        return _Attempt(outcome, response=response, server_wait=server_wait)

    def _pause(self, scope: str, until: float) -> None:
        """Feed the server's wait back to the limiter. It is advice for later requests: a
        limiter that cannot record it (a shared store that is down) must not turn this
        answer, perhaps an accepted send, into an error that says nothing was sent."""
        assert self.limiter is not None
        try:
            self.limiter.pause(scope, until)
        except QontakError as exc:
            log_kv(logging.WARNING, "rate-limit pause not recorded", scope=scope, error=str(exc))

    def next_delay(self, req: ApiRequest, attempt: int, result: _Attempt) -> float | None:
        """Seconds to wait before retrying, or ``None`` to stop here."""
        max_retries = self.retry.max_retries if req.max_retries is None else req.max_retries
        policy = replace(self.retry, max_retries=max_retries)
        if not policy.should_retry(result.outcome, attempt=attempt, idempotent=req.idempotent):
            return None
        if result.server_wait is not None and result.server_wait > policy.max_wait:
            return None
        delay = policy.delay(attempt, server_wait=result.server_wait, rng=self.rng)
        log_kv(
            logging.INFO,
            "retrying",
            method=req.method,
            path=req.path,
            after=f"{delay:.2f}s",
            reason=result.outcome.value,
            status=result.response.status_code if result.response is not None else None,
        )
        return delay

    def finish(
        self, req: ApiRequest, result: _Attempt, attempts: int, sent_at: float
    ) -> ApiResponse:
        """Turn the last attempt into an :class:`ApiResponse` or raise the right error."""
        if result.outcome is Outcome.OK and result.response is not None:
            response = result.response
            body = _decode(response)
            # No copy of the headers, and the envelope kept as bytes (decoded on demand):
            # a result someone keeps should not carry a second, decoded copy of its body.
            info = ResponseInfo(
                response.status_code,
                response.headers,
                request_id=_request_id(response, body),
                content=response.content,
            )
            log_kv(
                logging.DEBUG,
                "response",
                method=req.method,
                path=req.path,
                status=response.status_code,
                request_id=info.request_id,
            )
            return ApiResponse(body=body, info=info)
        raise self.error_for(req, result, attempts, sent_at)

    def error_for(
        self, req: ApiRequest, result: _Attempt, attempts: int, sent_at: float
    ) -> Exception:
        """The exception that describes a failed call (logged on the ``qontak`` logger)."""
        error = self._error_for(req, result, attempts, sent_at)
        level = logging.WARNING if isinstance(error, DeliveryUnknownError) else logging.INFO
        log_kv(level, "failed", method=req.method, path=req.path, error=type(error).__name__)
        return error

    def _unknown(
        self, req: ApiRequest, detail: str, sent_at: float, **extra: Any
    ) -> DeliveryUnknownError:
        what = (
            "the message may or may not have been accepted"
            if req.scope == SCOPE_SEND
            else ("the request may or may not have taken effect")
        )
        return DeliveryUnknownError(
            f"{detail}: {what}; it was not re-sent. Reconcile before sending again",
            payload=req.json if isinstance(req.json, Mapping) else None,
            sent_at=sent_at,
            **extra,
        )

    def _error_for(
        self, req: ApiRequest, result: _Attempt, attempts: int, sent_at: float
    ) -> Exception:
        where = f"{req.method} {req.path}"
        kind = type(result.error).__name__
        if result.outcome in (Outcome.NOT_SENT, Outcome.NO_ANSWER):
            if result.outcome is Outcome.NO_ANSWER and not req.idempotent:
                return self._unknown(req, f"no answer to {where} ({kind})", sent_at, cause=kind)
            timed_out = isinstance(result.error, httpx.TimeoutException)
            cls = APITimeoutError if timed_out else APIConnectionError
            verb = "could not reach Qontak" if result.outcome is Outcome.NOT_SENT else "no answer"
            tries = f"after {attempts} attempt{'s' if attempts != 1 else ''}"
            return cls(f"{verb} for {where} {tries} ({kind})", method=req.method)
        response = result.response
        assert response is not None
        body = _decode(response)
        err = status_error(
            response.status_code,
            body=body,
            headers=response.headers,
            request_id=_request_id(response, body),
            method=req.method,
            path=req.path,
            retry_after=result.server_wait,
        )
        if result.outcome is Outcome.SERVER_ERROR and not req.idempotent:
            reason = "; ".join(err.messages) or "server error"
            return self._unknown(
                req,
                f"HTTP {response.status_code} on {where} ({reason})",
                sent_at,
                status_code=response.status_code,
                request_id=err.request_id,
                cause=f"HTTP {response.status_code}",
            )
        return err

    # -- the two I/O loops -------------------------------------------------------------
    def run_sync(
        self,
        client: httpx.Client,
        req: ApiRequest,
        sleep: Callable[[float], None] = time.sleep,
    ) -> ApiResponse:
        """Send ``req`` with a blocking client, retrying as the policy says."""
        attempt = 0
        while True:
            granted = None
            if self.limiter is not None:  # waits, then takes the slot as the request goes
                granted = self.limiter.acquire(req.scope, clock=self.monotonic, sleep=sleep)
            try:  # the slot is given back whatever happens, building the request included
                request = self.prepare(req)
                sent_at = self.clock()
                log_kv(logging.DEBUG, "request", method=req.method, path=req.path, attempt=attempt)
                try:
                    result = self.on_response(req, client.send(request))
                except Exception as exc:
                    if not is_transport_error(exc):
                        raise
                    result = self.on_exception(exc)
            finally:
                if self.limiter is not None and granted is not None:
                    self.limiter.complete(req.scope, granted, self.monotonic())
            if result.outcome is Outcome.OK:
                return self.finish(req, result, attempt + 1, sent_at)
            delay = self.next_delay(req, attempt, result)
            if delay is None:
                return self.finish(req, result, attempt + 1, sent_at)
            if result.response is not None:
                result.response.close()
            sleep(delay)
            attempt += 1

    async def run_async(
        self,
        client: httpx.AsyncClient,
        req: ApiRequest,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> ApiResponse:
        """Send ``req`` with an async client, retrying as the policy says."""
        attempt = 0
        while True:
            granted = None
            if self.limiter is not None:  # waits, then takes the slot as the request goes
                granted = await self.limiter.acquire_async(
                    req.scope, clock=self.monotonic, sleep=sleep
                )
            try:  # the slot is given back whatever happens, building the request included
                request = self.prepare(req)
                sent_at = self.clock()
                log_kv(logging.DEBUG, "request", method=req.method, path=req.path, attempt=attempt)
                try:
                    result = self.on_response(req, await client.send(request))
                except Exception as exc:
                    if not is_transport_error(exc):
                        raise
                    result = self.on_exception(exc)
            finally:
                if self.limiter is not None and granted is not None:
                    self.limiter.complete(req.scope, granted, self.monotonic())
            if result.outcome is Outcome.OK:
                return self.finish(req, result, attempt + 1, sent_at)
            delay = self.next_delay(req, attempt, result)
            if delay is None:
                return self.finish(req, result, attempt + 1, sent_at)
            if result.response is not None:
                await result.response.aclose()
            await sleep(delay)
            attempt += 1
