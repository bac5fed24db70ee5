"""Several OpenAI-compatible endpoints serving one model (vLLM replicas), as one.

``llm_base_url`` may name several URLs, comma-separated. The client (``LLMClient``) keeps
one ``Endpoint`` per URL and asks ``EndpointSet`` where each request goes:

- **routing**: to the usable endpoint with the fewest outstanding requests (relative to
  its current concurrency limit), inside the client's one global in-flight bound;
- **take-out**: an endpoint whose connection fails (refused, reset), or that answers
  ``_TAKE_OUT_AFTER`` 5xx or timeouts in a row, is taken out for a back-off period
  (``_BACKOFF_BASE_S`` doubled for each take-out in a row, at most ``_BACKOFF_CAP_S``);
  the request is retried on another endpoint. When the back-off ends the endpoint is
  probed with one request at a time until one is answered. When every endpoint is out,
  requests go to the one due back first, as they would to a single server that is down:
  the client's outage logic (``llm_outage_wait_s``) decides how long a request keeps
  trying, and says so;
- **adaptive concurrency** (AIMD): a 429 (or a 5xx with ``Retry-After``) halves that
  endpoint's concurrency limit (at most once per ``_DECREASE_EVERY_S``); each answer
  adds ``1 / limit`` to it, back up to the global bound. Other endpoints are untouched.

With one URL none of this applies: the one endpoint is never taken out and its limit is
the global bound, so the client behaves as it always did. Which endpoint answered never
enters a cache key (the request body does).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Endpoint", "EndpointSet", "display_url", "endpoint_line", "split_base_urls"]

_TAKE_OUT_AFTER = 3  # 5xx answers or timeouts in a row that take an endpoint out
_BACKOFF_BASE_S = 1.0
_BACKOFF_CAP_S = 8.0
_DECREASE_EVERY_S = 1.0  # one halving per burst of 429s, not one per request in flight
_LATENCY_WINDOW = 5000  # latencies kept per endpoint for its percentiles


def split_base_urls(value: str | None) -> list[str]:
    """The URLs of a ``llm_base_url`` setting (comma-separated); [] for the local model."""
    if value is None:
        return []
    return [u.strip() for u in value.split(",") if u.strip()]


def display_url(url: str) -> str:
    """``url`` without user info, query or fragment: safe for logs and summaries."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


@dataclass
class Endpoint:
    """One URL, its HTTP client and what it has done in this run."""

    url: str
    limit: float  # current concurrency limit (AIMD)
    max_limit: int
    client: Any = None  # parallelner.llm.transport.HTTPClient
    outstanding: int = 0
    down_until: float = 0.0  # monotonic; taken out until then
    takeouts_in_row: int = 0  # take-outs since the last answer (sets the back-off)
    probing: bool = False  # back from a take-out, not answered yet: one request at a time
    errors_in_row: int = 0
    last_decrease: float = -math.inf
    # what the summary shows
    requests: int = 0
    answered: int = 0
    errors: int = 0
    rate_limited: int = 0
    taken_out: int = 0
    down_s: float = 0.0
    max_outstanding: int = 0
    min_limit: float = math.inf
    latencies_s: list[float] = field(default_factory=list, repr=False)

    def capacity(self) -> int:
        """Requests it may have outstanding now."""
        return 1 if self.probing else max(1, math.floor(self.limit))

    def stats(self) -> dict[str, Any]:
        """Plain-data figures for the run summary."""
        data = sorted(self.latencies_s)

        def pct(p: float) -> float | None:
            if not data:
                return None
            return round(data[max(0, math.ceil(p / 100 * len(data)) - 1)], 4)

        return {
            "url": display_url(self.url),
            "requests": self.requests,
            "answered": self.answered,
            "errors": self.errors,
            "rate_limited": self.rate_limited,
            "taken_out": self.taken_out,
            "down_s": round(self.down_s, 1),
            "max_outstanding": self.max_outstanding,
            "min_limit": None if self.min_limit == math.inf else math.floor(self.min_limit),
            "latency_p50_s": pct(50),
            "latency_p95_s": pct(95),
        }


class EndpointSet:
    """Routes requests over the endpoints; see the module docstring."""

    def __init__(self, urls: list[str], max_in_flight: int, log: Any):
        self.endpoints = [Endpoint(u, float(max_in_flight), max_in_flight) for u in urls]
        self.several = len(self.endpoints) > 1
        self._log = log
        self._changed = asyncio.Event()

    # -- routing -------------------------------------------------------------------------

    def pick(self, now: float | None = None) -> Endpoint | None:
        """The endpoint for the next request, or None when none may take one now."""
        if not self.several:
            return self.endpoints[0]
        now = time.monotonic() if now is None else now
        if all(ep.down_until > now for ep in self.endpoints):
            # every one is out: the request goes to the one back soonest and fails fast
            # there, so that the client's outage logic (llm_outage_wait_s) decides how
            # long it keeps trying, and says so, as with one endpoint
            return min(self.endpoints, key=lambda ep: ep.down_until)
        best: Endpoint | None = None
        best_load = math.inf
        for ep in self.endpoints:
            if ep.down_until > now:
                continue
            if ep.down_until:  # its back-off is over: probe it
                ep.down_until = 0.0
                ep.probing = True
            cap = ep.capacity()
            if ep.outstanding >= cap:
                continue
            load = ep.outstanding / cap
            if load < best_load:
                best, best_load = ep, load
        return best

    async def acquire(self, sem: asyncio.Semaphore) -> Endpoint:
        """Take a global slot and an endpoint; waits while no endpoint may take one.

        The global slot is not held while waiting, so a slot is only ever held by a
        request that is about to go on the wire.
        """
        while True:
            await sem.acquire()
            ep = self.pick()
            if ep is not None:
                ep.outstanding += 1
                ep.requests += 1
                ep.max_outstanding = max(ep.max_outstanding, ep.outstanding)
                return ep
            sem.release()
            self._changed.clear()
            now = time.monotonic()
            wake = min(
                (ep.down_until - now for ep in self.endpoints if ep.down_until > now), default=1.0
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=max(0.01, min(wake, 1.0)))

    def release(self, ep: Endpoint) -> None:
        """The request sent to ``ep`` is over (answered or not)."""
        ep.outstanding -= 1
        self._changed.set()

    def usable(self, besides: Endpoint | None = None) -> bool:
        """True when an endpoint other than ``besides`` is not taken out."""
        now = time.monotonic()
        return any(ep is not besides and ep.down_until <= now for ep in self.endpoints)

    # -- outcomes ------------------------------------------------------------------------

    def answered(self, ep: Endpoint, latency: float) -> None:
        """``ep`` answered (a 200): it is healthy; its limit grows by 1 / limit."""
        ep.answered += 1
        ep.latencies_s.append(latency)
        if len(ep.latencies_s) > 2 * _LATENCY_WINDOW:
            del ep.latencies_s[:-_LATENCY_WINDOW]
        ep.errors_in_row = 0
        ep.down_until = 0.0
        if ep.probing or ep.takeouts_in_row:
            if ep.taken_out:
                self._log.warning("LLM endpoint %s answers again", display_url(ep.url))
            ep.probing = False
            ep.takeouts_in_row = 0
        ep.limit = min(float(ep.max_limit), ep.limit + 1.0 / max(ep.limit, 1.0))
        self._changed.set()

    def failed(self, ep: Endpoint, detail: str, *, connection: bool = False) -> bool:
        """``ep`` failed a request (connection, 5xx, timeout); True when taken out now."""
        ep.errors += 1
        if not self.several:
            return False
        ep.errors_in_row += 1
        if ep.down_until > time.monotonic():
            return False  # already out (a request sent before it was taken out)
        if connection or ep.probing or ep.errors_in_row >= _TAKE_OUT_AFTER:
            self._take_out(ep, detail)
            return True
        return False

    def rate_limited(self, ep: Endpoint, retry_after: float | None) -> None:
        """``ep`` answered 429 (or asked to wait): halve its limit (AIMD decrease)."""
        ep.errors += 1
        ep.rate_limited += 1
        if not self.several:
            return
        now = time.monotonic()
        if now - ep.last_decrease < max(_DECREASE_EVERY_S, retry_after or 0.0):
            return
        ep.last_decrease = now
        old = ep.limit
        ep.limit = max(1.0, min(ep.limit, ep.outstanding) / 2)
        ep.min_limit = min(ep.min_limit, ep.limit)
        if math.floor(old) != math.floor(ep.limit):
            self._log.info(
                "LLM endpoint %s rate-limits: its concurrency %d -> %d",
                display_url(ep.url),
                math.floor(old),
                math.floor(ep.limit),
            )

    def _take_out(self, ep: Endpoint, detail: str) -> None:
        backoff = min(_BACKOFF_CAP_S, _BACKOFF_BASE_S * 2**ep.takeouts_in_row)
        ep.takeouts_in_row += 1
        ep.taken_out += 1
        ep.probing = False
        ep.errors_in_row = 0
        ep.down_until = time.monotonic() + backoff
        ep.down_s += backoff
        left = sum(e.down_until <= time.monotonic() for e in self.endpoints)
        self._log.warning(
            "LLM endpoint %s taken out for %.0f s (%s); %d of %d endpoints in use",
            display_url(ep.url),
            backoff,
            detail,
            left,
            len(self.endpoints),
        )

    def stats(self) -> list[dict[str, Any]]:
        """Per-endpoint figures, in the order of the setting."""
        return [ep.stats() for ep in self.endpoints]

    def down_count(self) -> int:
        """Endpoints taken out now."""
        now = time.monotonic()
        return sum(ep.down_until > now for ep in self.endpoints)


def endpoint_line(stats: dict[str, Any]) -> str:
    """One endpoint's figures (``Endpoint.stats()``) in words, for the run summary."""
    text = f"{stats['requests']} requests, {stats['errors']} errors"
    if stats.get("rate_limited"):
        text += f" ({stats['rate_limited']} rate-limited, concurrency down to {stats['min_limit']})"
    if stats.get("taken_out"):
        text += f", taken out {stats['taken_out']}x ({stats['down_s']:.0f} s)"
    if stats.get("latency_p50_s") is not None:
        text += f", latency p50 {stats['latency_p50_s']:.2f} s p95 {stats['latency_p95_s']:.2f} s"
    return text
