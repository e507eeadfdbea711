"""The clients: :class:`Qontak` (blocking) and :class:`AsyncQontak` (asyncio/trio).

Both hold the same settings, retry policy and rate limiter and differ only in how they
wait for I/O. Configuration comes from arguments, then ``QONTAK_*`` environment variables,
then a ``.env`` file.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, NoReturn

import anyio
import httpx
import phonenumbers

from ._checks import check_finite, check_retries, check_text, check_timeout, type_name
from ._config import (
    ENV_RATE_LIMIT_STORE,
    ENV_RATE_LIMITS,
    Settings,
    resolve_rate_limit_store,
    resolve_rate_limits_text,
    resolve_settings,
)
from ._http import HttpTransport, async_http_client, check_pool_options, sync_http_client
from ._logging import setup_logging
from ._pipeline import DEFAULT_TIMEOUT, ApiRequest, ApiResponse, Pipeline
from ._ratelimit import DEFAULT_LIMITS, RateLimiter, Rule, parse_rate_limits
from ._retry import DEFAULT_RETRY, RetryPolicy
from ._shared_ratelimit import SharedRateLimiter, shared_from_setting
from .errors import ConfigurationError
from .models import DirectMessage, Template
from .render import preview as render_preview
from .resources import (
    AsyncBroadcasts,
    AsyncChannels,
    AsyncFileUploader,
    AsyncTemplates,
    AsyncWebhooks,
    Broadcasts,
    Channels,
    FileUploader,
    Templates,
    Webhooks,
)
from .resources.broadcasts import coerce_message
from .validation import DEFAULT_REGION

__all__ = ["AsyncQontak", "Qontak"]

#: How long a template fetched for validation is trusted before it is fetched again.
TEMPLATE_CACHE_SECONDS = 300.0

RateLimitSetting = bool | str | RateLimiter | Mapping[str, Iterable[Rule]] | None


def _rules(
    setting: RateLimitSetting, env_file: str | os.PathLike[str] | None
) -> Mapping[str, Iterable[Rule]] | None:
    """The rules ``rate_limits`` asks for (``None``: switched off)."""
    if setting is None or setting is False:
        return None
    if setting is True or isinstance(setting, str):
        # True: the documented defaults, unless QONTAK_RATE_LIMITS says otherwise.
        text = resolve_rate_limits_text(env_file=env_file) if setting is True else setting
        if text is None:
            return DEFAULT_LIMITS
        name = ENV_RATE_LIMITS if setting is True else "rate_limits"
        return parse_rate_limits(text, setting=name)
    if isinstance(setting, RateLimiter):
        return setting.rules
    return _checked_rules(setting)


def _limiter(
    setting: RateLimitSetting,
    env_file: str | os.PathLike[str] | None = None,
    *,
    limiter: RateLimiter | None = None,
    client_id: str = "",
) -> RateLimiter | None:
    if limiter is None and isinstance(setting, SharedRateLimiter):
        limiter, setting = setting, True
    if limiter is not None:
        if not isinstance(limiter, RateLimiter):
            raise ConfigurationError(
                "rate_limiter: expected a RateLimiter or SharedRateLimiter, "
                f"got {type(limiter).__name__}",
                setting="rate_limiter",
                reason="wrong type",
            )
        rules = _rules(setting, env_file)
        if rules is None and setting is not True:
            raise ConfigurationError(
                "rate_limiter: given while rate_limits switches limiting off; drop one",
                setting="rate_limiter",
                reason="conflicts with rate_limits",
            )
        if isinstance(limiter, SharedRateLimiter):
            # The budget is the account's: keyed by client id unless the limiter names one.
            return limiter.bound(client_id, rules)
        return limiter
    if isinstance(setting, RateLimiter):
        return setting
    rules = _rules(setting, env_file)
    if rules is None:
        return None
    store = resolve_rate_limit_store(env_file=env_file)
    if store is not None:
        return shared_from_setting(store, ENV_RATE_LIMIT_STORE, rules).bound(client_id)
    return RateLimiter(rules)


def _checked_rules(setting: object) -> dict[str, list[Rule]]:
    """A ``{scope: [Rule, ...]}`` mapping with every rule checked."""
    if not isinstance(setting, Mapping):
        _bad_setting(
            "rate_limits",
            "expected True, False, text, a RateLimiter or {scope: [Rule, ...]}, "
            f"got {type_name(setting)}",
        )
    rules: dict[str, list[Rule]] = {}
    for scope, scope_rules in setting.items():
        check_text("rate_limits", scope, max_len=64, multiline=False, setting=True)
        if isinstance(scope_rules, Rule | str) or not isinstance(scope_rules, Iterable):
            _bad_setting(f"rate_limits.{scope}", "expected a list of Rule")
        rules[scope] = []
        for rule in scope_rules:
            if not isinstance(rule, Rule):
                _bad_setting(f"rate_limits.{scope}", f"expected Rule, got {type_name(rule)}")
            # Rule checks its own bounds, but NaN passes every comparison.
            check_finite(f"rate_limits.{scope}.per", rule.per, inclusive_min=False, setting=True)
            if isinstance(rule.requests, bool) or not isinstance(rule.requests, int):
                _bad_setting(f"rate_limits.{scope}.requests", "expected a whole number")
            rules[scope].append(rule)
    return rules


def _bad_setting(setting: str, reason: str) -> NoReturn:
    raise ConfigurationError(f"{setting}: {reason}", setting=setting, reason=reason)


def _retry_policy(retry: object, max_retries: object) -> RetryPolicy:
    """The policy in force, every field checked (a NaN retry count would never stop)."""
    if retry is None:
        policy = DEFAULT_RETRY
    elif isinstance(retry, RetryPolicy):
        policy = retry
    else:
        _bad_setting("retry", f"expected a RetryPolicy, got {type_name(retry)}")
    check_retries("retry.max_retries", policy.max_retries, setting=True)
    for name in ("backoff_base", "backoff_max", "max_wait"):
        check_finite(f"retry.{name}", getattr(policy, name), setting=True)
    check_finite("retry.jitter", policy.jitter, maximum=1.0, setting=True)
    if max_retries is not None:
        retries = check_retries("max_retries", max_retries, setting=True)
        policy = dataclasses.replace(policy, max_retries=retries)
    return policy


def _timeout(value: object) -> httpx.Timeout:
    checked = check_timeout("timeout", value, setting=True)
    if checked is None:
        return DEFAULT_TIMEOUT
    if isinstance(checked, httpx.Timeout):
        return checked
    return httpx.Timeout(checked, connect=min(checked, 5.0))


def _region(value: object) -> str:
    text = check_text("default_region", value, max_len=8, multiline=False, setting=True)
    region = text.upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise ConfigurationError(
            f"default_region: {text!r} is not a region code such as 'ID'",
            setting="default_region",
            reason="not a region code such as 'ID'",
        )
    return region


def _callable(name: str, value: object) -> None:
    if value is not None and not callable(value):
        _bad_setting(name, f"expected a function, got {type_name(value)}")


def _http_client(value: object, cls: type[httpx.Client] | type[httpx.AsyncClient]) -> None:
    if value is not None and not isinstance(value, cls):
        _bad_setting("http_client", f"expected an httpx.{cls.__name__}, got {type_name(value)}")


class _TemplateCache:
    """Templates by id, trusted for a few minutes (shared by copies of a client)."""

    def __init__(self) -> None:
        self._items: dict[str, tuple[float, Template]] = {}
        self._lock = threading.Lock()

    def get(self, template_id: str, now: float) -> Template | None:
        with self._lock:
            hit = self._items.get(template_id)
        if hit and now - hit[0] < TEMPLATE_CACHE_SECONDS:
            return hit[1]
        return None

    def put(self, template: Template, now: float) -> None:
        with self._lock:
            self._items[template.id] = (now, template)


class _Common:
    """Settings and decisions shared by both clients (no I/O here)."""

    _pipeline: Pipeline
    _owns_http: bool
    default_region: str

    def _setup(
        self,
        client_id: str | None,
        client_secret: str | None,
        *,
        base_url: str | None,
        environment: str | None,
        timeout: httpx.Timeout | float | None,
        max_retries: int | None,
        retry: RetryPolicy | None,
        rate_limits: RateLimitSetting,
        rate_limiter: RateLimiter | None,
        default_region: str,
        env_file: str | os.PathLike[str] | None,
        clock: Callable[[], float] | None,
    ) -> None:
        setup_logging()
        _callable("clock", clock)
        settings = resolve_settings(
            client_id,
            client_secret,
            base_url=base_url,
            environment=environment,
            env_file=env_file,
        )
        policy = _retry_policy(retry, max_retries)
        self._pipeline = Pipeline(
            settings=settings,
            retry=policy,
            limiter=_limiter(
                rate_limits, env_file, limiter=rate_limiter, client_id=settings.client_id
            ),
            timeout=_timeout(timeout),
            clock=clock or time.time,
            # An injected clock (tests, simulations) drives the limiter too.
            monotonic=clock or time.monotonic,
        )
        self.default_region = _region(default_region)
        self._templates_cache = _TemplateCache()

    @property
    def settings(self) -> Settings:
        """Resolved settings (the secret is wrapped and never printed)."""
        return self._pipeline.settings

    @property
    def base_url(self) -> str:
        """The API root, e.g. ``https://api.mekari.com/qontak/chat/v1``."""
        return self._pipeline.settings.base_url

    @property
    def retry_policy(self) -> RetryPolicy:
        """The retry settings in force."""
        return self._pipeline.retry

    @property
    def rate_limiter(self) -> RateLimiter | None:
        """The shared client-side rate limiter (``None`` when switched off)."""
        return self._pipeline.limiter

    def _now(self) -> float:
        return self._pipeline.clock()

    def _known_template(self, message: DirectMessage) -> Template | None:
        """The message's template if it is at hand (built with it, or fetched recently)."""
        if message.template is not None:
            return message.template
        return self._templates_cache.get(message.message_template_id, self._now())

    def _copy_with(self, timeout: httpx.Timeout | float | None, max_retries: int | None) -> Any:
        clone = copy.copy(self)
        changes: dict[str, Any] = {}
        if timeout is not None:
            changes["timeout"] = _timeout(timeout)
        if max_retries is not None:
            changes["retry"] = _retry_policy(self._pipeline.retry, max_retries)
        clone._pipeline = self._pipeline.with_options(**changes)
        clone._owns_http = False
        clone._bind_resources()
        return clone

    def _bind_resources(self) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(client_id={self.settings.client_id!r}, "
            f"base_url={self.base_url!r})"
        )


class Qontak(_Common):
    """Blocking client for the Qontak WhatsApp API.

    >>> from qontak import Qontak, messages
    >>> client = Qontak()  # doctest: +SKIP
    >>> otp = client.templates.find("login_otp", language="id")  # doctest: +SKIP

    Args:
        client_id, client_secret: credentials; default ``QONTAK_CLIENT_ID`` /
            ``QONTAK_CLIENT_SECRET`` from the environment or ``.env``.
        base_url: API root (``QONTAK_BASE_URL``); a bare host gets ``/qontak/chat/v1``.
        environment: ``production`` (default), ``staging`` or ``sandbox``.
        timeout: seconds or an ``httpx.Timeout`` (default: connect 5 s, 30 s overall).
        max_retries: extra attempts for retryable failures (default 2).
        rate_limits: ``True`` (defaults: 60 sends/min, 100 requests/min, 10/s, or
            ``QONTAK_RATE_LIMITS``), text such as ``"send=600/min,all=1000/min,burst=20/s"``
            or ``"off"``, ``False``/``None`` to switch off, or
            ``{"send": [Rule(...)], "all": [...]}``.
        rate_limiter: a limiter to use, e.g. ``SharedRateLimiter("postgresql://…")`` to share
            the budget with every process using that store (keyed by client id; its rules
            are ``rate_limits`` unless it has its own). Default: in this process only, or
            ``QONTAK_RATE_LIMIT_STORE`` when set.
        http_client: your own ``httpx.Client`` (proxies, transports, tests).
        default_region: region for numbers without a country code (default ``ID``).
        max_connections: connections the client may open, all kept alive for reuse
            (default 100; size it to the threads that share the client).
    """

    def __init__(
        self,
        client_id: str | None = None,
        client_secret: str | None = None,
        *,
        base_url: str | None = None,
        environment: str | None = None,
        timeout: httpx.Timeout | float | None = None,
        max_retries: int | None = None,
        retry: RetryPolicy | None = None,
        rate_limits: RateLimitSetting = True,
        rate_limiter: RateLimiter | None = None,
        http_client: httpx.Client | None = None,
        default_region: str = DEFAULT_REGION,
        env_file: str | os.PathLike[str] | None = ".env",
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], None] | None = None,
        max_connections: int | None = None,
    ) -> None:
        _http_client(http_client, httpx.Client)
        _callable("sleep", sleep)
        pool_size = check_pool_options(max_connections, "auto", own_client=http_client is None)
        self._setup(
            client_id,
            client_secret,
            base_url=base_url,
            environment=environment,
            timeout=timeout,
            max_retries=max_retries,
            retry=retry,
            rate_limits=rate_limits,
            rate_limiter=rate_limiter,
            default_region=default_region,
            env_file=env_file,
            clock=clock,
        )
        self._owns_http = http_client is None
        self._http = http_client or sync_http_client(self._pipeline.timeout, pool_size)
        self._sleep_fn = sleep or time.sleep
        self._bind_resources()

    def _bind_resources(self) -> None:
        self.channels = Channels(self)
        self.templates = Templates(self)
        self.broadcasts = Broadcasts(self)
        self.file_uploader = FileUploader(self)
        self.webhooks = Webhooks(self)

    def _request(self, req: ApiRequest) -> ApiResponse:
        return self._pipeline.run_sync(self._http, req, self._sleep_fn)

    def _sleep(self, seconds: float) -> None:
        self._sleep_fn(seconds)

    def _template_for(self, message: DirectMessage) -> Template:
        template = self._known_template(message)
        if template is None:
            template = self.templates.get(message.message_template_id)
            self._templates_cache.put(template, self._now())
        return template

    def preview(self, message: DirectMessage | Mapping[str, Any]) -> str:
        """What the recipient will see, as text; no message is sent (the template may be
        fetched once)."""
        msg = coerce_message(message)
        return render_preview(self._template_for(msg), msg)

    def with_options(
        self, *, timeout: httpx.Timeout | float | None = None, max_retries: int | None = None
    ) -> Qontak:
        """A client with other defaults that shares this one's connections and rate budget.

        >>> client.with_options(timeout=5, max_retries=0).channels.list()  # doctest: +SKIP
        """
        clone: Qontak = self._copy_with(timeout, max_retries)
        return clone

    def close(self) -> None:
        """Close the connection pool (only if this client created it)."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Qontak:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncQontak(_Common):
    """Async client with the same surface as :class:`Qontak` (every call is awaited).

    >>> async with AsyncQontak() as client:  # doctest: +SKIP
    ...     channel = (await client.channels.list())[0]

    Besides :class:`Qontak`'s arguments:

    Args:
        max_connections: connections the client may open, all kept alive for reuse
            (default 100). Size it to the requests you keep in flight.
        http_transport: ``"auto"`` (default): aiohttp when ``qontak[aiohttp]`` is installed
            and the loop is asyncio, else httpx's own pool; ``"aiohttp"`` or ``"httpx"`` to
            choose. aiohttp costs several times less CPU per request under concurrency.
    """

    def __init__(
        self,
        client_id: str | None = None,
        client_secret: str | None = None,
        *,
        base_url: str | None = None,
        environment: str | None = None,
        timeout: httpx.Timeout | float | None = None,
        max_retries: int | None = None,
        retry: RetryPolicy | None = None,
        rate_limits: RateLimitSetting = True,
        rate_limiter: RateLimiter | None = None,
        http_client: httpx.AsyncClient | None = None,
        default_region: str = DEFAULT_REGION,
        env_file: str | os.PathLike[str] | None = ".env",
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Any] | None = None,
        max_connections: int | None = None,
        http_transport: HttpTransport = "auto",
    ) -> None:
        _http_client(http_client, httpx.AsyncClient)
        _callable("sleep", sleep)
        own = http_client is None
        pool_size = check_pool_options(max_connections, http_transport, own_client=own)
        self._setup(
            client_id,
            client_secret,
            base_url=base_url,
            environment=environment,
            timeout=timeout,
            max_retries=max_retries,
            retry=retry,
            rate_limits=rate_limits,
            rate_limiter=rate_limiter,
            default_region=default_region,
            env_file=env_file,
            clock=clock,
        )
        self._owns_http = http_client is None
        self._http = http_client or async_http_client(
            self._pipeline.timeout, pool_size, http_transport
        )
        self._sleep_fn = sleep or anyio.sleep
        self._bind_resources()

    def _bind_resources(self) -> None:
        self.channels = AsyncChannels(self)
        self.templates = AsyncTemplates(self)
        self.broadcasts = AsyncBroadcasts(self)
        self.file_uploader = AsyncFileUploader(self)
        self.webhooks = AsyncWebhooks(self)

    async def _request(self, req: ApiRequest) -> ApiResponse:
        return await self._pipeline.run_async(self._http, req, self._sleep_fn)

    async def _sleep(self, seconds: float) -> None:
        await self._sleep_fn(seconds)

    async def _template_for(self, message: DirectMessage) -> Template:
        template = self._known_template(message)
        if template is None:
            template = await self.templates.get(message.message_template_id)
            self._templates_cache.put(template, self._now())
        return template

    async def preview(self, message: DirectMessage | Mapping[str, Any]) -> str:
        """See :meth:`Qontak.preview`."""
        msg = coerce_message(message)
        return render_preview(await self._template_for(msg), msg)

    def with_options(
        self, *, timeout: httpx.Timeout | float | None = None, max_retries: int | None = None
    ) -> AsyncQontak:
        """See :meth:`Qontak.with_options`."""
        clone: AsyncQontak = self._copy_with(timeout, max_retries)
        return clone

    async def aclose(self) -> None:
        """Close the connection pool (only if this client created it)."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncQontak:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
