"""One LLM client for vLLM, the OpenAI API and the local model (OpenAI wire format).

The client is the request path and the parts it is put together from, each with one job:

- ``parallelner.llm.transport``: HTTP on aiohttp (one session per endpoint), failures
  classified into a few kinds;
- ``parallelner.llm.policy``: retries with backoff and ``Retry-After``, waiting out an
  outage, the request timeout fitted to observed latency, hedging a slow request;
- ``parallelner.llm.endpoints``: several endpoints (``base_url`` with comma-separated
  URLs, vLLM replicas of one model), least-outstanding routing inside the one in-flight
  bound, failed endpoints taken out, per-endpoint AIMD concurrency on 429;
- ``parallelner.llm.cache``: the persistent reply cache, looked up before a slot is taken;
- ``parallelner.llm.usage``: the counters (``client.usage``; ``count_usage(usage)`` counts
  one piece of work, e.g. a shard, while other work shares the client);
- ``parallelner.llm.backends``: which backend answers ``ask`` (chat on a server, few-shot
  on the embedded local model) and the embedded server's lifecycle, started on open and
  stopped on close, apart from the request path.

What is left here: one ``asyncio.Semaphore`` per client bounding the requests in flight
for every caller (a slot is held only while a request is on the wire, never while backing
off), the loop of tries of one request (``_send``), and validated structured output
(``chat_json`` asks for ``response_format=json_schema`` and always validates the reply
with pydantic, re-asking a bounded number of times).

Per-request failures are values (``ChatOutcome.reason``), never exceptions, so one bad
instance cannot stop a batch. The API key is never put in a log line, a cache row or an
error message.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from parallelner.errors import LLMError, Pending
from parallelner.llm.ask import Backend, Question
from parallelner.llm.backends import choose_backend
from parallelner.llm.batch import BatchAnswerSource
from parallelner.llm.cache import (
    CachedReply,
    GroupCommitCache,
    cache_key,
    cache_location,
    open_reply_cache,
)
from parallelner.llm.endpoints import Endpoint, EndpointSet, display_url, split_base_urls
from parallelner.llm.outcomes import (
    ChatOutcome,
    Check,
    CompletionOutcome,
    Failure,
    Reply,
    RequestFailed,
    json_chat_body,
    judge_reply,
)
from parallelner.llm.policy import RETRY_STATUS, RequestPolicy, Tries, retry_after
from parallelner.llm.transport import (
    BadResponse,
    ConnectFailed,
    ConnectionLost,
    HTTPClient,
    StatusError,
)
from parallelner.llm.usage import Usage, UsageMeter, count_usage
from parallelner.reasons import Reason
from parallelner.settings import Settings

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

_PATHS = {"chat": "/chat/completions", "completion": "/completions"}


def _tokens(value: Any) -> int:
    """A token count from a reply's ``usage`` (0 when missing or not a number)."""
    return value if type(value) is int else 0


def _completion_reply(resp: Any, kind: str) -> CachedReply:
    """The reply a completion response holds (a live one, or a batch job's line); raises
    IndexError, KeyError or TypeError for a body that is not a completion."""
    choice = resp["choices"][0]
    content = choice["message"]["content"] if kind == "chat" else choice["text"]
    if not isinstance(content, str | None):
        raise TypeError("content is not text")
    u = resp.get("usage")
    u = u if isinstance(u, dict) else {}
    return CachedReply(
        content or "",
        choice.get("finish_reason"),
        _tokens(u.get("prompt_tokens")),
        _tokens(u.get("completion_tokens")),
    )


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
        batch: BatchAnswerSource | None = None,
    ):
        self.base_url = base_url
        self.model = model
        # a batch round (``parallelner.batchrun``): replies come from batch jobs' output,
        # a question none answered stops the instance (``Pending``); nothing is sent
        self.batch = batch
        self._choice = choose_backend(base_url, batch=batch is not None)
        self.is_local = self._choice.local
        self.max_in_flight = self._choice.max_in_flight(max_in_flight)
        self.cache_path = cache_path
        self.usage = Usage()
        self._meter = UsageMeter(self.usage)
        self.policy = RequestPolicy(
            self.usage,
            timeout_s=timeout_s,
            max_retries=max_retries,
            outage_wait_s=outage_wait_s,
            min_timeout_s=min_timeout_s,
            first_timeout_s=first_timeout_s,
        )
        self._in_flight: dict[int, float] = {}  # request number -> monotonic start
        self._request_ids = 0
        self._api_key = api_key
        self._sem = asyncio.Semaphore(self.max_in_flight)
        # one endpoint per URL (the local model: one, its URL known once started)
        self._endpoints = EndpointSet(split_base_urls(base_url) or [""], self.max_in_flight, log)
        self._open = False
        self._cache: GroupCommitCache | None = None
        self._server = None  # the embedded model's server, while open

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        cache: bool = True,
        wait_out_outages: bool = False,
        batch: BatchAnswerSource | None = None,
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
            batch=batch,
        )

    # -- the policy's settings and state, as before the split ---------------------------

    timeout_s = property(lambda self: self.policy.timeout_s)
    max_retries = property(lambda self: self.policy.max_retries)
    outage_wait_s = property(lambda self: self.policy.outage_wait_s)
    min_timeout_s = property(lambda self: self.policy.min_timeout_s)
    first_timeout_s = property(lambda self: self.policy.first_timeout_s)
    last_reply_at = property(lambda self: self.policy.last_reply_at)
    outage_since = property(lambda self: self.policy.outage_since)

    # -- lifecycle -----------------------------------------------------------------------

    async def __aenter__(self) -> LLMClient:
        self._server = self._choice.server(self.model)
        if self._server is not None:
            self._endpoints.endpoints[0].url = await self._server.open()
        for ep in self._endpoints.endpoints if self.batch is None else ():
            # no timeout of its own: the policy's deadline (at most ``timeout_s``) bounds
            # each try, hedges included
            ep.client = HTTPClient(ep.url, api_key=self._api_key or "EMPTY", timeout=None)
        self._open = True
        if self.cache_path is not None:
            self._cache = open_reply_cache(self.cache_path)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client and the cache; stop the local model server."""
        if self._open:
            for ep in self._endpoints.endpoints if self.batch is None else ():
                await ep.client.aclose()
                ep.client = None
            self._open = False
        if self._cache is not None:
            self._cache.close()
            self._cache = None
        if self._server is not None:
            await self._server.aclose()
            self._server = None

    # -- public calls --------------------------------------------------------------------

    @functools.cached_property
    def backend(self) -> Backend:
        """How this client asks a ``Question``: chat requests on a server, few-shot
        completions on the embedded local base model (``backends.choose_backend``)."""
        return self._choice.backend(self)

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
            if isinstance(reply, Failure):
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
        if isinstance(reply, Failure):
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

    # -- the request path ----------------------------------------------------------------

    def _count(self, name: str, n: int = 1) -> None:
        self._meter.count(name, n)

    def _redact(self, text: str) -> str:
        if self._api_key and len(self._api_key) >= 4:
            text = text.replace(self._api_key, "***")
        return text[:300]

    def request_timeout(self) -> float:
        """Seconds the next request may take (``RequestPolicy.request_timeout``)."""
        return self.policy.request_timeout()

    def in_flight_ages(self) -> list[float]:
        """Seconds each request now on the wire has been waiting for its reply."""
        now = time.monotonic()
        return [now - t for t in self._in_flight.values()]

    def outage_seconds(self) -> float:
        """How long the server has answered nothing while requests failed (0: no outage)."""
        return self.policy.outage_seconds()

    async def _send(self, kind: str, body: dict[str, Any], prompt_version: str) -> Reply | Failure:
        """One logical request: cache, then tries under the bound until the policy stops."""
        if not self._open:
            raise LLMError("the LLM client is not open: use 'async with LLMClient(...)'")
        key = cache_key({"kind": kind, **body}, prompt_version)
        if self._cache is not None:
            hit = await self._cache.aget(key)
            if hit is not None:
                self._count("cache_hits")
                return Reply(hit.content, hit.finish_reason, cached=True)
        if self.batch is not None:
            return await self._from_batch(kind, key, body, prompt_version)
        tries = Tries()
        endpoints = self._endpoints
        policy = self.policy
        while True:
            ep = await endpoints.acquire(self._sem)
            try:
                outcome, server_wait, stepped_aside = await self._try(ep, kind, body, tries)
                if isinstance(outcome, CachedReply):
                    # the slot is held until the reply is on disk, so what a SIGKILL can
                    # lose is bounded by max_in_flight (the write itself is off the loop)
                    if self._cache is not None:
                        await self._cache.aput(key, str(body["model"]), prompt_version, outcome)
                    return Reply(outcome.content, outcome.finish_reason, cached=False)
            finally:
                endpoints.release(ep)
                self._sem.release()
            failure = outcome
            if not failure.transient:
                self._count("failures")
                return failure
            policy.failed(tries)
            if (
                endpoints.several
                and stepped_aside
                and tries.reroutes < 2 * len(endpoints.endpoints)
                and endpoints.usable(besides=ep)
            ):
                # this endpoint is out or asked us to slow down, another one is up: retry
                # there now, without spending this request's retry budget
                tries.reroutes += 1
                self._count("retries")
                log.info("LLM request failed (%s); retried on another endpoint", failure.detail)
                continue
            delay = policy.next_try(tries, failure, server_wait)
            if delay is None:
                break
            self._count("retries")
            await asyncio.sleep(delay)
        self._count("failures")
        if failure.transient:
            self._count("transient_failures")
        assert tries.first_failure is not None
        waited = time.monotonic() - tries.first_failure
        return Failure(
            failure.reason,
            f"{failure.detail} (after {tries.attempt} retries in {waited:.0f} s)",
            failure.transient,
        )

    async def _from_batch(
        self, kind: str, key: str, body: dict[str, Any], prompt_version: str
    ) -> Reply | Failure:
        """The reply a batch job gave for this question (kept in the reply cache as an
        online reply is), or ``Pending``: it joins the round's questions."""
        assert self.batch is not None
        resp = self.batch.answer(key)
        if resp is None:
            if self.batch.gave_up(key):  # failed in every round it was asked: transient
                self._count("failures")
                self._count("transient_failures")
                return Failure(
                    Reason.LLM_HTTP_ERROR,
                    f"the batch line failed in {self.batch.failed[key]} rounds",
                    transient=True,
                )
            self.batch.need(key, kind, body)
            raise Pending(key)
        try:
            reply = _completion_reply(resp, kind)
        except (IndexError, KeyError, TypeError):
            self._count("failures")
            return Failure(Reason.LLM_HTTP_ERROR, "the batch line is not a completion")
        self._count("requests")
        self._meter.answered(0.0, reply.prompt_tokens, reply.completion_tokens)
        if self._cache is not None:
            await self._cache.aput(key, str(body["model"]), prompt_version, reply)
        return Reply(reply.content, reply.finish_reason, cached=False)

    async def _try(
        self, ep: Endpoint, kind: str, body: dict[str, Any], tries: Tries
    ) -> tuple[CachedReply | Failure, float | None, bool]:
        """One try on ``ep`` (its slot held): the reply, or the failure with the wait the
        server asked for and whether the endpoint was taken out or slowed down."""
        endpoints = self._endpoints
        self._count("requests")
        self._request_ids += 1
        rid = self._request_ids
        t0 = time.perf_counter()
        self._in_flight[rid] = time.monotonic()
        try:
            resp, latency = await self.policy.within_deadline(
                functools.partial(ep.client.post_json, _PATHS[kind], body),
                tries.timeouts,
                self._sem,
                self._hedged,
            )
            reply = _completion_reply(resp, kind)
        except StatusError as exc:
            status = exc.status
            detail = self._redact(f"HTTP {status} from the LLM server: {exc.message}")
            if status in (401, 403):  # every request will fail: stop the run now
                raise LLMError(
                    f"{display_url(ep.url)}: the LLM server refused the API key "
                    f"({detail}); check PARALLELNER_LLM_API_KEY and run the same "
                    "command again (replies received so far are in the cache)"
                ) from None
            if status not in RETRY_STATUS and status < 500:
                return Failure(Reason.LLM_HTTP_ERROR, detail, transient=False), None, False
            failure = Failure(Reason.LLM_HTTP_ERROR, detail)
            server_wait = retry_after(exc.headers)
            if status == 429 or server_wait is not None:  # slow this one down
                endpoints.rate_limited(ep, server_wait)
                return failure, server_wait, True
            return failure, None, endpoints.failed(ep, detail)
        except TimeoutError:
            self._count("timeouts")
            waited = time.perf_counter() - t0
            tries.timeouts += 1
            self.policy.log_first_timeout(waited, tries.timeouts)
            failure = Failure(Reason.LLM_UNREACHABLE, f"no reply within {waited:.3g} s")
            return failure, None, endpoints.failed(ep, failure.detail)
        except (ConnectFailed, ConnectionLost) as exc:
            if isinstance(exc, ConnectFailed):  # refused: no request reached the server
                self._count("requests", -1)
                self._count("connect_failures")
            failure = Failure(
                Reason.LLM_UNREACHABLE,
                self._redact(f"connection failed ({exc.cause})"),
                connection=True,
            )
            return failure, None, endpoints.failed(ep, failure.detail, connection=True)
        except (BadResponse, ValueError, IndexError, KeyError, TypeError) as exc:
            # a 200 whose body is not a chat completion (a gateway's HTML page, no
            # choices, bytes that are not UTF-8): the server is broken, not the
            # question; retried as a 5xx is, and if it stays broken the failure is
            # transient, so the shard stays unfinished and the next run asks again
            failure = Failure(
                Reason.LLM_HTTP_ERROR,
                self._redact(f"the server's response is not a completion ({type(exc).__name__})"),
            )
            return failure, None, endpoints.failed(ep, failure.detail)
        finally:
            self._in_flight.pop(rid, None)
        self.policy.answered(latency)
        endpoints.answered(ep, latency)
        self._meter.answered(latency, reply.prompt_tokens, reply.completion_tokens)
        return reply, None, False

    def _hedged(self) -> None:
        self._count("requests")
        self._count("hedges")
