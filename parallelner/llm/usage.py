"""Usage accounting: what a client's requests cost, counted per client and per piece of work.

``Usage`` holds the counters of one client (one run); ``count_usage(usage, work)`` counts
the requests of one piece of work (a shard) in ``usage`` too while other work shares the
client; ``UsageMeter`` is what the request path adds to: the client's own ``Usage`` and
every ``Usage`` the current task counts in.
"""

from __future__ import annotations

import contextvars
import math
import random
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

__all__ = ["Usage", "UsageMeter", "count_usage"]

T = TypeVar("T")

# latencies kept for the percentiles: 20,000 floats (~0.6 MB) whatever the run's size;
# the p99 of a larger run is estimated from a uniform sample of its requests
LATENCY_SAMPLE = 20_000
_RESERVOIR = random.Random(26)

_COUNTERS = (
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
    # a uniform sample of the answered requests' latencies (every one up to
    # ``LATENCY_SAMPLE``, then a reservoir of that size: memory flat in the run's size)
    latencies_s: list[float] = field(default_factory=list, repr=False)
    answered_n: int = field(default=0, repr=False)

    def add_latency(self, latency: float) -> None:
        """Count one answered request's latency in the sample (reservoir sampling)."""
        self.answered_n += 1
        if len(self.latencies_s) < LATENCY_SAMPLE:
            self.latencies_s.append(latency)
            return
        j = _RESERVOIR.randrange(self.answered_n)
        if j < LATENCY_SAMPLE:
            self.latencies_s[j] = latency

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
        out: dict[str, Any] = {k: getattr(self, k) for k in _COUNTERS}
        for p in (50, 95, 99):
            v = self.percentile(p)
            out[f"latency_p{p}_s"] = None if v is None else round(v, 4)
        return out


# Extra Usage objects that the requests of the current task (and the tasks it starts) are
# also counted in: how a shard counts its own requests on a client that other shards share.
_SINKS: contextvars.ContextVar[tuple[Usage, ...]] = contextvars.ContextVar(
    "parallelner_usage_sinks", default=()
)


async def count_usage(usage: Usage, work: Coroutine[Any, Any, T]) -> T:
    """Await ``work`` while counting every request it makes in ``usage`` too.

    ``work`` is a coroutine not yet started: the tasks it starts inherit the counting.
    """
    token = _SINKS.set((*_SINKS.get(), usage))
    try:
        return await work
    finally:
        _SINKS.reset(token)


class UsageMeter:
    """Adds to one client's ``Usage`` and to every ``Usage`` the current task counts in."""

    __slots__ = ("usage",)

    def __init__(self, usage: Usage):
        self.usage = usage

    def count(self, name: str, n: int = 1) -> None:
        """Add ``n`` to counter ``name`` of the client's usage and the task's sinks."""
        self.usage.add(name, n)
        for sink in _SINKS.get():
            sink.add(name, n)

    def answered(self, latency: float, prompt_tokens: int, completion_tokens: int) -> None:
        """Count one answered request: its latency and its tokens."""
        usages = (self.usage, *_SINKS.get())
        for u in usages:
            u.add_latency(latency)
            u.prompt_tokens += prompt_tokens
            u.completion_tokens += completion_tokens
