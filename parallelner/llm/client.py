"""One LLM client for vLLM, the OpenAI API and the local model (OpenAI wire format).

Requests go through ``parallelner.llm.transport`` (aiohttp, one session per endpoint: the
OpenAI SDK cost ~10 ms of CPU per request at hundreds of requests per second). On top of
the HTTP exchange it adds:

- retries with exponential backoff and full jitter on connection errors, timeouts and
  HTTP 408/409/429/5xx, honouring ``Retry-After``;
- an outage is waited out (``outage_wait_s``): a request whose retries are spent keeps
  trying, at most every ``_OUTAGE_PROBE_S``, while the server answers nobody (see
  ``_waits_out``); a failure for a transient reason is counted
  (``usage.transient_failures``) so callers can tell it from a final one;
- a request timeout fitted to observed latency (``min_timeout_s``): once
  ``_TIMEOUT_MIN_SAMPLES`` replies are in, a request is given up after
  ``_TIMEOUT_P99_FACTOR`` x the p99 latency (never less than ``min_timeout_s``, never more
  than ``timeout_s``; doubled for each retry of that request), so a hung request frees its
  slot in seconds, not minutes; a request slow past half that, while a slot is free, is
  hedged (sent once more, the first answer wins);
- one ``asyncio.Semaphore`` per client bounding the requests in flight for every caller
  (a slot is held only while a request is on the wire, never while backing off);
- several endpoints (``base_url`` with comma-separated URLs, vLLM replicas of one model):
  least-outstanding routing inside that one bound, failed endpoints taken out for a
  back-off and their requests retried elsewhere, per-endpoint AIMD concurrency on 429
  (``parallelner.llm.endpoints``; ``client.endpoint_stats()``);
- the persistent reply cache (``parallelner.llm.cache``), looked up before a slot is taken;
- validated structured output: ``chat_json`` asks for ``response_format=json_schema``
  and always validates the reply with pydantic, re-asking a bounded number of times;
- usage counters (``client.usage``, and ``count_usage(usage)`` to count one piece of work,
  e.g. a shard, while other work shares the client).

Per-request failures are values (``ChatOutcome.reason``), never exceptions, so one bad
instance cannot stop a batch. The API key is never put in a log line, a cache row or an
error message.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import email.utils
import functools
import json
import logging
import math
import random
import re
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from parallelner.errors import LLMError
from parallelner.llm.cache import (
    CachedReply,
    GroupCommitCache,
    cache_key,
    cache_location,
    open_reply_cache,
)
from parallelner.llm.endpoints import EndpointSet, display_url, split_base_urls
from parallelner.llm.transport import (
    BadResponse,
    ConnectFailed,
    ConnectionLost,
    HTTPClient,
    StatusError,
)
from parallelner.reasons import Reason
from parallelner.settings import Settings

if TYPE_CHECKING:
    from parallelner.llm.ask import Backend, Question

__all__ = [
    "LLMClient",
    "ChatOutcome",
    "CompletionOutcome",
    "RequestFailed",
    "Usage",
    "Check",
    "json_chat_body",
    "judge_reply",
    "count_usage",
]

log = logging.getLogger("parallelner.llm")

M = TypeVar("M", bound=BaseModel)
# A domain check on a parsed reply: None when fine, else (reason, human detail).
Check = Callable[[Any], "tuple[Reason, str] | None"]

_RETRY_STATUS = frozenset({408, 409, 429})
_BACKOFF_BASE_S = 0.5
_BACKOFF_CAP_S = 20.0
_RETRY_AFTER_CAP_S = 120.0
_OUTAGE_PROBE_S = 5.0  # while waiting out an outage: the longest pause between tries
_OUTAGE_LOG_EVERY_S = 15.0
_OUTAGE_GRACE_S = 5.0  # no answer from the server for this long: an outage
_OUTAGE_FAILURES = 10  # ... or this many tries in a row failed (any requests)
_TIMEOUT_P99_FACTOR = 3.0
_TIMEOUT_MIN_SAMPLES = 20
_TIMEOUT_WINDOW = 500  # latencies the fitted timeout looks at (the most recent)
_HEDGE_AT = 0.5  # share of its fitted timeout after which a slow request is hedged
# llama.cpp's server answers one request at a time: more in flight only queues there and
# turns into client timeouts.
_LOCAL_MAX_IN_FLIGHT = 2


@dataclass
class Usage:
    """Counters for one client (one run): requests, retries, tokens, cache, latency."""

    requests: int = 0  # HTTP requests sent, retries and hedges included
    retries: int = 0  # transport retries (429, 5xx, timeouts, resets)
    reasks: int = 0  # re-asks after an unusable reply
    failures: int = 0  # calls that ended without any reply after all retries
    transient_failures: int = 0  # ... of which for a transient reason (outage, 5xx, 429...)
    timeouts: int = 0  # requests given up for taking too long (then retried)
    hedges: int = 0  # second copies of a slow request sent while a slot was free
    connect_failures: int = 0  # tries that could not connect (not in ``requests``)
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latencies_s: list[float] = field(default_factory=list, repr=False)

    def add(self, name: str, n: int = 1) -> None:
        """Add ``n`` to the counter ``name``."""
        setattr(self, name, getattr(self, name) + n)

    def percentile(self, p: float) -> float | None:
        """Latency percentile (nearest rank) of answered requests, in seconds."""
        if not self.latencies_s:
            return None
        data = sorted(self.latencies_s)
        rank = max(1, min(len(data), math.ceil(p / 100 * len(data))))
        return data[rank - 1]

    def as_dict(self) -> dict[str, Any]:
        """Plain-data view, latency percentiles included."""
        out: dict[str, Any] = {
            k: getattr(self, k)
            for k in (
                "requests",
                "retries",
                "reasks",
                "failures",
                "transient_failures",
                "timeouts",
                "hedges",
                "connect_failures",
                "cache_hits",
                "prompt_tokens",
                "completion_tokens",
            )
        }
        for p in (50, 95, 99):
            v = self.percentile(p)
            out[f"latency_p{p}_s"] = None if v is None else round(v, 4)
        return out


# Extra Usage objects that the requests of the current task (and the tasks it starts) are
# also counted in: how a shard counts its own requests on a client that other shards share.
_SINKS: contextvars.ContextVar[tuple[Usage, ...]] = contextvars.ContextVar(
    "parallelner_usage_sinks", default=()
)

T = TypeVar("T")


async def count_usage(usage: Usage, work: Coroutine[Any, Any, T]) -> T:
    """Await ``work`` while counting every request it makes in ``usage`` too.

    ``work`` is a coroutine not yet started: the tasks it starts inherit the counting.
    """
    token = _SINKS.set((*_SINKS.get(), usage))
    try:
        return await work
    finally:
        _SINKS.reset(token)


@dataclass(frozen=True)
class ChatOutcome(Generic[M]):
    """Result of ``chat_json``: the parsed reply, or why there is none (raw text kept)."""

    value: M | None
    reason: Reason | None
    detail: str
    raw: str | None
    model: str
    finish_reason: str | None = None
    cached: bool = False
    attempts: int = 1
    prompt_version: str = ""  # the prompt the backend asked with (set by ``ask``)

    @property
    def ok(self) -> bool:
        """True when ``value`` holds a validated reply."""
        return self.reason is None


@dataclass(frozen=True)
class CompletionOutcome:
    """Result of ``complete_outcome``: generated text and why generation stopped."""

    text: str
    finish_reason: str | None
    model: str
    cached: bool = False


class RequestFailed(LLMError):
    """A request got no reply after every retry (raised by ``complete`` only)."""

    def __init__(self, reason: Reason, detail: str):
        self.reason = reason
        self.detail = detail
        super().__init__(f"{detail} [{reason.value}]")


@dataclass(frozen=True)
class _Reply:
    content: str
    finish_reason: str | None
    cached: bool


@dataclass(frozen=True)
class _Failure:
    reason: Reason
    detail: str
    transient: bool = True  # another try later may succeed (outage, 5xx, 429, timeout)
    connection: bool = False  # no HTTP answer at all: refused, reset (the server, not us)


_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.S)


def _strip_fence(text: str) -> str:
    m = _FENCE.match(text)
    return m.group(1) if m else text


def _retry_after(headers: dict[str, str]) -> float | None:
    """Seconds the server asked us to wait (Retry-After / retry-after-ms), if any."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _tokens(value: Any) -> int:
    """A token count from a reply's ``usage`` (0 when missing or not a number)."""
    return value if type(value) is int else 0


def judge_reply(
    content: str, finish_reason: str | None, response_model: type[M], check: Check | None = None
) -> tuple[M | None, Reason | None, str]:
    """Parse and validate one reply: (value, None, "") or (None, reason, detail).

    Truncated (finish_reason ``length``), empty, not JSON, not matching the model, or
    rejected by ``check`` — in that order. Code fences around the JSON are tolerated.
    """
    if finish_reason == "length":
        return None, Reason.REPLY_TRUNCATED, "the reply was cut off (finish_reason=length)"
    text = content.strip()
    if not text:
        return None, Reason.REPLY_EMPTY, "the reply is empty"
    try:
        data = json.loads(_strip_fence(text))
    except json.JSONDecodeError as exc:
        return None, Reason.REPLY_INVALID_JSON, f"the reply is not valid JSON ({exc.msg})"
    try:
        value = response_model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "reply"
        return None, Reason.REPLY_INVALID_JSON, f"{where}: {first['msg']}"
    if check is not None:
        verdict = check(value)
        if verdict is not None:
            return None, verdict[0], verdict[1]
    return value, None, ""


@functools.cache
def _json_schema(response_model: type[BaseModel]) -> dict[str, Any]:
    # generating a schema costs ~1 ms of CPU: once per model class, not per request
    return response_model.model_json_schema()


def json_chat_body(
    messages: Sequence[dict[str, str]],
    response_model: type[BaseModel],
    *,
    model: str,
    max_tokens: int,
    temperature: float,
) -> dict[str, Any]:
    """The chat-completions request body asking for JSON that matches ``response_model``.

    The same body goes on the wire, into the cache key and into batch files.
    """
    return {
        "model": model,
        "messages": list(messages),
        "temperature": temperature,
        "max_tokens": max_tokens,
        "response_format": {
            "type": "json_schema",
            "json_schema": {
                "name": response_model.__name__,
                "schema": _json_schema(response_model),
            },
        },
    }


class LLMClient:
    """The project's LLM client. Use as ``async with LLMClient.from_settings(s) as c:``."""

    def __init__(
        self,
        *,
        base_url: str | None,
        model: str,
        api_key: str | None = None,
        max_in_flight: int = 64,
        timeout_s: float = 120.0,
        max_retries: int = 6,
        cache_path: Path | None = None,
        outage_wait_s: float = 0.0,
        min_timeout_s: float | None = None,
        first_timeout_s: float | None = None,
    ):
        self.base_url = base_url
        self.model = model
        self.is_local = base_url is None
        self.max_in_flight = (
            min(max_in_flight, _LOCAL_MAX_IN_FLIGHT) if self.is_local else max_in_flight
        )
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.cache_path = cache_path
        self.outage_wait_s = outage_wait_s
        self.min_timeout_s = min_timeout_s
        self.first_timeout_s = first_timeout_s
        self._first_timeout_logged = 0.0
        self.usage = Usage()
        self.last_reply_at: float | None = None  # monotonic time of the latest answer
        self.outage_since: float | None = None  # first failure with no answer since
        self._failures_since_reply = 0  # transient failures of any request since an answer
        self._in_flight: dict[int, float] = {}  # request number -> monotonic start
        self._request_ids = 0
        self._recent: list[float] = []  # latest latencies, for the fitted timeout
        self._fitted: tuple[int, float] | None = None  # (replies when computed, timeout)
        self._outage_logged = 0.0
        self._api_key = api_key
        self._sem = asyncio.Semaphore(self.max_in_flight)
        # one endpoint per URL (the local model: one, its URL known once started)
        self._endpoints = EndpointSet(split_base_urls(base_url) or [""], self.max_in_flight, log)
        self._http: HTTPClient | None = None  # the first endpoint's; set while open
        self._cache: GroupCommitCache | None = None
        self._local = None

    @classmethod
    def from_settings(
        cls, settings: Settings, *, cache: bool = True, wait_out_outages: bool = False
    ) -> LLMClient:
        """A client configured by settings (cache under ``settings.home``).

        ``wait_out_outages``: wait up to ``settings.llm_outage_wait_s`` for a server that
        answers nothing (a pipeline run); otherwise give up after the retries.
        """
        key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
        return cls(
            base_url=settings.llm_base_url,
            model=settings.llm_model,
            api_key=key,
            max_in_flight=settings.llm_max_in_flight,
            timeout_s=settings.translate.timeout_s,
            max_retries=settings.translate.max_retries,
            cache_path=cache_location(settings) if cache else None,
            outage_wait_s=settings.llm_outage_wait_s if wait_out_outages else 0.0,
            min_timeout_s=settings.llm_timeout_min_s,
            first_timeout_s=settings.llm_first_timeout_s,
        )

    # -- lifecycle -----------------------------------------------------------------------

    async def __aenter__(self) -> LLMClient:
        if self.is_local:
            from parallelner.llm.local import LocalServer

            self._local = LocalServer(model_alias=self.model)
            self._endpoints.endpoints[0].url = await asyncio.to_thread(self._local.start)
        for ep in self._endpoints.endpoints:
            ep.client = HTTPClient(ep.url, api_key=self._api_key or "EMPTY", timeout=self.timeout_s)
        self._http = self._endpoints.endpoints[0].client
        if self.cache_path is not None:
            self._cache = open_reply_cache(self.cache_path)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client and the cache; stop the local model server."""
        if self._http is not None:
            for ep in self._endpoints.endpoints:
                await ep.client.aclose()
                ep.client = None
            self._http = None
        if self._cache is not None:
            self._cache.close()
            self._cache = None
        if self._local is not None:
            await asyncio.to_thread(self._local.stop)
            self._local = None

    # -- public calls --------------------------------------------------------------------

    @functools.cached_property
    def backend(self) -> Backend:
        """How this client asks a ``Question``: chat requests on a server, few-shot
        completions on the embedded local base model."""
        if self.is_local:
            from parallelner.llm.fewshot import FewShotBackend

            return FewShotBackend(self)
        from parallelner.llm.ask import ChatBackend

        return ChatBackend(self)

    async def ask(self, question: Question[M], *, model: str | None = None) -> ChatOutcome[M]:
        """Ask ``question`` (with ``model``, default the client's); the backend decides how.

        This is the call stage code makes; it never raises for a per-request failure.
        """
        return await self.backend.ask(question, model=model)

    def endpoint_stats(self) -> list[dict[str, Any]]:
        """Requests, errors, take-outs and latency of each endpoint (URLs without secrets)."""
        return self._endpoints.stats()

    def endpoints_down(self) -> int:
        """Endpoints taken out now (always 0 with one endpoint)."""
        return self._endpoints.down_count()

    def describe(self) -> dict[str, Any]:
        """What answers: the model, and whether it is the embedded local one."""
        return {"model": self.model, "local": self.is_local}

    async def chat_json(
        self,
        messages: Sequence[dict[str, str]],
        response_model: type[M],
        *,
        model: str | None = None,
        prompt_version: str,
        max_tokens: int = 1024,
        temperature: float = 0.0,
        check: Check | None = None,
        max_reasks: int = 0,
    ) -> ChatOutcome[M]:
        """Ask for JSON matching ``response_model``; validate it; re-ask if unusable.

        A reply is unusable when it is truncated, empty, not JSON, does not validate, or
        ``check(value)`` returns a reason. Up to ``max_reasks`` re-asks show the model its
        reply and what is wrong with it (temperature raised to 0.3, 0.6...). Never raises
        for a per-request failure.
        """
        model = model or self.model
        msgs = list(messages)
        tokens = max_tokens
        last: tuple[Reason, str, str | None, str | None, bool] | None = None
        for ask in range(max_reasks + 1):
            body = json_chat_body(
                msgs, response_model, model=model, max_tokens=tokens, temperature=temperature
            )
            reply = await self._send("chat", body, prompt_version)
            if isinstance(reply, _Failure):
                raw = last[2] if last else None
                return ChatOutcome(None, reply.reason, reply.detail, raw, model, attempts=ask + 1)
            value, reason, detail = judge_reply(
                reply.content, reply.finish_reason, response_model, check
            )
            if reason is None:
                return ChatOutcome(
                    value,
                    None,
                    "",
                    reply.content,
                    model,
                    reply.finish_reason,
                    reply.cached,
                    ask + 1,
                )
            last = (reason, detail, reply.content, reply.finish_reason, reply.cached)
            if ask < max_reasks:
                self._count("reasks")
                if reason is Reason.REPLY_TRUNCATED:
                    tokens = tokens * 2
                # the conversation grows with each bad reply, and re-asks sample a little,
                # so no re-ask repeats an earlier request (which the cache would answer)
                temperature = max(temperature, min(1.0, 0.3 * (ask + 1)))
                msgs = [
                    *msgs,
                    {"role": "assistant", "content": reply.content},
                    {
                        "role": "user",
                        "content": f"That reply cannot be used: {detail}. "
                        "Answer again with only the complete JSON object.",
                    },
                ]
        assert last is not None
        reason, detail, raw, finish, cached = last
        return ChatOutcome(None, reason, detail, raw, model, finish, cached, max_reasks + 1)

    async def complete_outcome(
        self,
        prompt: str,
        *,
        stop: Sequence[str] | None = None,
        max_tokens: int = 256,
        model: str | None = None,
        prompt_version: str,
        temperature: float = 0.0,
    ) -> CompletionOutcome:
        """Plain text completion (``/v1/completions``); raises ``RequestFailed``."""
        model = model or self.model
        body: dict[str, Any] = {
            "model": model,
            "prompt": prompt,
            "max_tokens": max_tokens,
            "temperature": temperature,
        }
        if stop:
            body["stop"] = list(stop)
        reply = await self._send("completion", body, prompt_version)
        if isinstance(reply, _Failure):
            raise RequestFailed(reply.reason, reply.detail)
        return CompletionOutcome(reply.content, reply.finish_reason, model, reply.cached)

    async def complete(
        self,
        prompt: str,
        *,
        stop: Sequence[str] | None = None,
        max_tokens: int = 256,
        model: str | None = None,
        prompt_version: str,
        temperature: float = 0.0,
    ) -> str:
        """Completion-style prompting for base models; returns the generated text."""
        out = await self.complete_outcome(
            prompt,
            stop=stop,
            max_tokens=max_tokens,
            model=model,
            prompt_version=prompt_version,
            temperature=temperature,
        )
        return out.text

    # -- internals -----------------------------------------------------------------------

    def _count(self, name: str, n: int = 1) -> None:
        self.usage.add(name, n)
        for sink in _SINKS.get():
            sink.add(name, n)

    def _redact(self, text: str) -> str:
        if self._api_key and len(self._api_key) >= 4:
            text = text.replace(self._api_key, "***")
        return text[:300]

    def request_timeout(self) -> float:
        """Seconds the next request may take: fitted to the observed p99, within bounds;
        ``first_timeout_s`` until enough replies were seen to fit it."""
        if self.min_timeout_s is None or len(self._recent) < _TIMEOUT_MIN_SAMPLES:
            if self.first_timeout_s is not None:
                return min(self.timeout_s, self.first_timeout_s)
            return self.timeout_s
        n = self.usage.requests
        if self._fitted is None or n - self._fitted[0] >= 10:  # recomputed every 10 sends
            data = sorted(self._recent)
            p99 = data[max(0, math.ceil(0.99 * len(data)) - 1)]
            fitted = max(self.min_timeout_s, _TIMEOUT_P99_FACTOR * p99)
            self._fitted = (n, min(self.timeout_s, fitted))
        return self._fitted[1]

    async def _within_deadline(
        self, call: Callable[[], Awaitable[T]], timeouts: int
    ) -> tuple[T, float]:
        """Await ``call()`` until its deadline; hedge it when it is slow and a slot is free.

        Returns the result and the latency of the copy that answered.

        The deadline is the fitted timeout (doubled for each time this request timed out
        before), looked at again every second, so requests sent before enough latencies
        were seen get the fitted timeout too once it exists. It is an overall deadline: the
        SDK's timeout is per read, and a server that trickles bytes would never trip it.

        Hedging: once the request has waited half its fitted timeout (``_HEDGE_AT``), and
        only while a slot is free (nobody waits for one: it costs no one throughput), the
        same request is sent once more and the first answer wins; the other is cancelled.
        It keeps a hung request from holding back the end of a shard.
        """
        started = time.monotonic()
        tasks = [asyncio.ensure_future(call())]
        sent_at = {tasks[0]: started}
        extra_slot = False
        try:
            while True:
                fitted = self.min_timeout_s is not None and self._fitted is not None
                limit = min(self.timeout_s, self.request_timeout() * 2**timeouts)
                age = time.monotonic() - started
                left = limit - age
                if left <= 0:
                    raise TimeoutError
                wait = min(left, 1.0)
                if fitted and len(tasks) == 1:
                    hedge_at = _HEDGE_AT * limit
                    if age >= hedge_at and not self._sem.locked():
                        await self._sem.acquire()
                        extra_slot = True
                        self._count("requests")
                        self._count("hedges")
                        tasks.append(asyncio.ensure_future(call()))
                        sent_at[tasks[-1]] = time.monotonic()
                    elif age < hedge_at:
                        wait = min(wait, hedge_at - age)
                done, _ = await asyncio.wait(
                    tasks, timeout=max(wait, 0.01), return_when=asyncio.FIRST_COMPLETED
                )
                for task in done:
                    if task.exception() is None or len(tasks) == 1:
                        return task.result(), time.monotonic() - sent_at[task]
                    tasks.remove(task)  # the hedge (or the original) failed: the other runs on
        finally:
            for task in tasks:
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(BaseException):
                        await task
            if extra_slot:
                self._sem.release()

    def in_flight_ages(self) -> list[float]:
        """Seconds each request now on the wire has been waiting for its reply."""
        now = time.monotonic()
        return [now - t for t in self._in_flight.values()]

    def outage_seconds(self) -> float:
        """How long the server has answered nothing while requests failed (0: no outage)."""
        if self.outage_since is None:
            return 0.0
        return time.monotonic() - self.outage_since

    def _answered(self, latency: float) -> None:
        self.last_reply_at = time.monotonic()
        self._failures_since_reply = 0
        if self.outage_since is not None and self._outage_logged >= self.outage_since:
            log.warning(
                "the LLM server answers again after %.0f s", self.last_reply_at - self.outage_since
            )
        self.outage_since = None
        self._recent.append(latency)
        if len(self._recent) > 2 * _TIMEOUT_WINDOW:
            del self._recent[:-_TIMEOUT_WINDOW]

    def _log_first_timeout(self, waited: float, timeouts: int) -> None:
        """One line (at most every 10 s) when a request times out before the server has
        answered any: what the run waits for, and the setting that bounds it."""
        if self.last_reply_at is not None or self.first_timeout_s is None:
            return
        now = time.monotonic()
        if now - self._first_timeout_logged < 10.0:
            return
        self._first_timeout_logged = now
        nxt = min(self.timeout_s, self.request_timeout() * 2**timeouts)
        log.warning(
            "no reply from the LLM server within %.3g s and none answered yet (a server "
            "that trickles bytes or never answers; setting llm_first_timeout_s): retrying "
            "with %.3g s, up to %d tries",
            waited,
            nxt,
            self.max_retries + 1,
        )

    def _waits_out(self, first_failure: float, failure: _Failure) -> bool:
        """Keep trying past the retry budget during an outage, for at most
        ``outage_wait_s`` from this request's first failure.

        An outage: the last try could not even connect (refused, reset), the server has
        answered nobody for ``_OUTAGE_GRACE_S``, or the last ``_OUTAGE_FAILURES`` tries
        (of any request) all failed. A request that gets 5xx/429/timeouts while others
        are answered fails for its own reasons: its retry budget decides.
        """
        if not failure.transient or self.outage_wait_s <= 0:
            return False
        now = time.monotonic()
        last = self.last_reply_at
        quiet = failure.connection or last is None or now - last >= _OUTAGE_GRACE_S
        if not quiet and self._failures_since_reply < _OUTAGE_FAILURES:
            return False  # the server answers others: this request's own failures are final
        if now - first_failure >= self.outage_wait_s:
            return False
        if now - self._outage_logged >= _OUTAGE_LOG_EVERY_S:
            self._outage_logged = now
            log.warning(
                "the LLM server has not answered for %.1f s (%s); waiting up to %.0f s "
                "for it to come back (setting llm_outage_wait_s)",
                self.outage_seconds(),
                failure.detail,
                self.outage_wait_s,
            )
        return True

    async def _send(
        self, kind: str, body: dict[str, Any], prompt_version: str
    ) -> _Reply | _Failure:
        """One logical request: cache, then retries under the bound; waits out an outage."""
        if self._http is None:
            raise LLMError("the LLM client is not open: use 'async with LLMClient(...)'")
        key = cache_key({"kind": kind, **body}, prompt_version)
        if self._cache is not None:
            hit = await self._cache.aget(key)
            if hit is not None:
                self._count("cache_hits")
                return _Reply(hit.content, hit.finish_reason, cached=True)
        failure: _Failure | None = None
        first_failure: float | None = None
        waiting_since: float | None = None
        timeouts = 0
        attempt = 0
        reroutes = 0  # retries on another endpoint that did not spend the retry budget
        endpoints = self._endpoints
        while True:
            retry_after: float | None = None
            ep = await endpoints.acquire(self._sem)
            taken_out = slowed = False  # this endpoint: taken out / asked us to slow down
            try:
                self._count("requests")
                self._request_ids += 1
                rid = self._request_ids
                t0 = time.perf_counter()
                self._in_flight[rid] = time.monotonic()
                try:
                    path = "/chat/completions" if kind == "chat" else "/completions"
                    resp, latency = await self._within_deadline(
                        functools.partial(ep.client.post_json, path, body), timeouts
                    )
                    choice = resp["choices"][0]
                    content = choice["message"]["content"] if kind == "chat" else choice["text"]
                    if not isinstance(content, str | None):
                        raise TypeError("content is not text")
                    content = content or ""
                    finish_reason = choice.get("finish_reason")
                except StatusError as exc:
                    status = exc.status
                    detail = self._redact(f"HTTP {status} from the LLM server: {exc.message}")
                    if status in (401, 403):  # every request will fail: stop the run now
                        raise LLMError(
                            f"{display_url(ep.url)}: the LLM server refused the API key "
                            f"({detail}); check PARALLELNER_LLM_API_KEY and run the same "
                            "command again (replies received so far are in the cache)"
                        ) from None
                    if status in _RETRY_STATUS or status >= 500:
                        failure = _Failure(Reason.LLM_HTTP_ERROR, detail)
                        retry_after = _retry_after(exc.headers)
                        if status == 429 or retry_after is not None:  # slow this one down
                            endpoints.rate_limited(ep, retry_after)
                            slowed = True
                        else:
                            taken_out = endpoints.failed(ep, detail)
                    else:
                        self._count("failures")
                        return _Failure(Reason.LLM_HTTP_ERROR, detail, transient=False)
                except TimeoutError:
                    self._count("timeouts")
                    waited = time.perf_counter() - t0
                    timeouts += 1
                    self._log_first_timeout(waited, timeouts)
                    failure = _Failure(Reason.LLM_UNREACHABLE, f"no reply within {waited:.3g} s")
                    taken_out = endpoints.failed(ep, failure.detail)
                except (ConnectFailed, ConnectionLost) as exc:
                    cause = exc.cause
                    if isinstance(exc, ConnectFailed):  # refused: no request reached the server
                        self._count("requests", -1)
                        self._count("connect_failures")
                    failure = _Failure(
                        Reason.LLM_UNREACHABLE,
                        self._redact(f"connection failed ({cause})"),
                        connection=True,
                    )
                    taken_out = endpoints.failed(ep, failure.detail, connection=True)
                except (BadResponse, ValueError, IndexError, KeyError, TypeError) as exc:
                    # a 200 whose body is not a chat completion (a gateway's HTML page, no
                    # choices, bytes that are not UTF-8): the server is broken, not the
                    # question; retried as a 5xx is, and if it stays broken the failure is
                    # transient, so the shard stays unfinished and the next run asks again
                    failure = _Failure(
                        Reason.LLM_HTTP_ERROR,
                        self._redact(
                            f"the server's response is not a completion ({type(exc).__name__})"
                        ),
                    )
                    taken_out = endpoints.failed(ep, failure.detail)
                else:
                    self._answered(latency)
                    endpoints.answered(ep, latency)
                    for u in (self.usage, *_SINKS.get()):
                        u.latencies_s.append(latency)
                    u = resp.get("usage")
                    u = u if isinstance(u, dict) else {}
                    reply = CachedReply(
                        content,
                        finish_reason,
                        _tokens(u.get("prompt_tokens")),
                        _tokens(u.get("completion_tokens")),
                    )
                    self._count("prompt_tokens", reply.prompt_tokens)
                    self._count("completion_tokens", reply.completion_tokens)
                    # the slot is held until the reply is on disk, so what a SIGKILL can
                    # lose is bounded by max_in_flight (the write itself is off the loop)
                    if self._cache is not None:
                        await self._cache.aput(key, str(body["model"]), prompt_version, reply)
                    return _Reply(reply.content, reply.finish_reason, cached=False)
                finally:
                    self._in_flight.pop(rid, None)
            finally:
                endpoints.release(ep)
                self._sem.release()
            now = time.monotonic()
            self._failures_since_reply += 1
            if first_failure is None:
                first_failure = now
            if self.outage_since is None and (
                self.last_reply_at is None or self.last_reply_at < first_failure
            ):
                self.outage_since = now
            if waiting_since is not None and (self.last_reply_at or 0.0) > waiting_since:
                # the outage this request waited out is over: a fresh budget of retries
                attempt, first_failure, waiting_since = 0, now, None
            if (
                endpoints.several
                and (taken_out or slowed)
                and reroutes < 2 * len(endpoints.endpoints)
                and endpoints.usable(besides=ep)
            ):
                # this endpoint is out or asked us to slow down, another one is up: retry
                # there now, without spending this request's retry budget
                reroutes += 1
                self._count("retries")
                log.info("LLM request failed (%s); retried on another endpoint", failure.detail)
                continue
            waiting = False
            if attempt >= self.max_retries:
                if not self._waits_out(first_failure, failure):
                    break
                waiting = True
                waiting_since = waiting_since or now
            self._count("retries")
            backoff = random.uniform(0, min(_BACKOFF_CAP_S, _BACKOFF_BASE_S * 2**attempt))
            if retry_after is None:
                delay = backoff
            else:  # what the server asked for, plus up to 10% so callers do not stampede
                delay = min(retry_after, _RETRY_AFTER_CAP_S) * random.uniform(1.0, 1.1)
            if waiting:  # probe often enough to notice the server is back
                delay = min(delay, random.uniform(0.5, 1.0) * _OUTAGE_PROBE_S)
            log.info(
                "LLM request failed (%s); retry %d in %.2f s",
                failure.detail,
                attempt + 1,
                delay,
            )
            attempt += 1
            await asyncio.sleep(delay)
        self._count("failures")
        if failure.transient:
            self._count("transient_failures")
        waited = time.monotonic() - first_failure
        return _Failure(
            failure.reason,
            f"{failure.detail} (after {attempt} retries in {waited:.0f} s)",
            failure.transient,
        )
