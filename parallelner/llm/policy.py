"""When to retry, wait out an outage, give up on a slow request or hedge it.

``RequestPolicy`` is the LLM client's judgement about time, kept apart from the request
path (``LLMClient._send``) that asks it:

- retries with exponential backoff and full jitter on connection errors, timeouts and
  HTTP 408/409/429/5xx, honouring ``Retry-After`` (``retry_after``, ``next_try``);
- an outage is waited out (``outage_wait_s``): a request whose retries are spent keeps
  trying, at most every ``_OUTAGE_PROBE_S``, while the server answers nobody
  (``waits_out``);
- a request timeout fitted to observed latency (``min_timeout_s``): once
  ``_TIMEOUT_MIN_SAMPLES`` replies are in, a request is given up after
  ``_TIMEOUT_P99_FACTOR`` x the p99 latency (never less than ``min_timeout_s``, never more
  than ``timeout_s``; doubled for each retry of that request), so a hung request frees its
  slot in seconds, not minutes; a request slow past half that, while a slot is free, is
  hedged (sent once more, the first answer wins: ``within_deadline``).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from parallelner.llm.outcomes import Failure
from parallelner.llm.usage import Usage

__all__ = ["RequestPolicy", "Tries", "retry_after", "RETRY_STATUS"]

log = logging.getLogger("parallelner.llm")

T = TypeVar("T")

RETRY_STATUS = frozenset({408, 409, 429})  # and every status >= 500
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


def retry_after(headers: dict[str, str]) -> float | None:
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


async def _first_done(tasks: list[asyncio.Future], timeout: float) -> None:
    """Return when one of ``tasks`` is done or after ``timeout`` seconds.

    ``asyncio.wait(..., return_when=FIRST_COMPLETED)`` without its sets of done and
    pending tasks: this runs once per request, 3-4% of the event loop at 800 requests/s.
    """
    loop = asyncio.get_running_loop()
    waiter = loop.create_future()

    def wake(_: object = None) -> None:
        if not waiter.done():
            waiter.set_result(None)

    handle = loop.call_later(timeout, wake)
    for task in tasks:
        task.add_done_callback(wake)
    try:
        await waiter
    finally:
        handle.cancel()
        for task in tasks:
            task.remove_done_callback(wake)


@dataclass(slots=True)
class Tries:
    """Where one logical request stands: its retries, timeouts and reroutes so far."""

    attempt: int = 0  # retries spent of the budget
    timeouts: int = 0  # tries given up for taking too long (each doubles the next limit)
    reroutes: int = 0  # retries on another endpoint that did not spend the budget
    first_failure: float | None = None
    waiting_since: float | None = None  # waiting out an outage since


class RequestPolicy:
    """Retry, outage, fitted-timeout and hedging decisions shared by a client's requests.

    It also holds what they rest on: when the server last answered, since when it has
    answered nobody, and the latest latencies.
    """

    def __init__(
        self,
        usage: Usage,
        *,
        timeout_s: float,
        max_retries: int,
        outage_wait_s: float = 0.0,
        min_timeout_s: float | None = None,
        first_timeout_s: float | None = None,
    ):
        self.usage = usage  # ``requests`` paces the refit of the fitted timeout
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.outage_wait_s = outage_wait_s
        self.min_timeout_s = min_timeout_s
        self.first_timeout_s = first_timeout_s
        self.last_reply_at: float | None = None  # monotonic time of the latest answer
        self.outage_since: float | None = None  # first failure with no answer since
        self._failures_since_reply = 0  # transient failures of any request since an answer
        self._recent: list[float] = []  # latest latencies, for the fitted timeout
        self._fitted: tuple[int, float] | None = None  # (requests when computed, timeout)
        self._outage_logged = 0.0
        self._first_timeout_logged = 0.0

    # -- timeouts and hedging ------------------------------------------------------------

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

    async def within_deadline(
        self,
        call: Callable[[], Awaitable[T]],
        timeouts: int,
        slots: asyncio.Semaphore,
        on_hedge: Callable[[], None],
    ) -> tuple[T, float]:
        """Await ``call()`` until its deadline; hedge it when it is slow and a slot is free.

        Returns the result and the latency of the copy that answered.

        The deadline is the fitted timeout (doubled for each time this request timed out
        before), looked at again every second, so requests sent before enough latencies
        were seen get the fitted timeout too once it exists. It is an overall deadline: a
        per-read timeout would never trip on a server that trickles bytes.

        Hedging: once the request has waited half its fitted timeout (``_HEDGE_AT``), and
        only while a slot of ``slots`` is free (nobody waits for one: it costs no one
        throughput), the same request is sent once more (``on_hedge`` counts it) and the
        first answer wins; the other is cancelled. It keeps a hung request from holding
        back the end of a shard.
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
                    if age >= hedge_at and not slots.locked():
                        await slots.acquire()
                        extra_slot = True
                        on_hedge()
                        tasks.append(asyncio.ensure_future(call()))
                        sent_at[tasks[-1]] = time.monotonic()
                    elif age < hedge_at:
                        wait = min(wait, hedge_at - age)
                await _first_done(tasks, max(wait, 0.01))
                for task in [t for t in tasks if t.done()]:
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
                slots.release()

    def log_first_timeout(self, waited: float, timeouts: int) -> None:
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

    # -- answers, failures and outages ---------------------------------------------------

    def outage_seconds(self) -> float:
        """How long the server has answered nothing while requests failed (0: no outage)."""
        if self.outage_since is None:
            return 0.0
        return time.monotonic() - self.outage_since

    def answered(self, latency: float) -> None:
        """A reply came in after ``latency`` seconds: the server is up."""
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

    def failed(self, tries: Tries) -> None:
        """A try of the request ``tries`` describes failed: note it (outage bookkeeping)."""
        now = time.monotonic()
        self._failures_since_reply += 1
        if tries.first_failure is None:
            tries.first_failure = now
        if self.outage_since is None and (
            self.last_reply_at is None or self.last_reply_at < tries.first_failure
        ):
            self.outage_since = now
        if tries.waiting_since is not None and (self.last_reply_at or 0.0) > tries.waiting_since:
            # the outage this request waited out is over: a fresh budget of retries
            tries.attempt, tries.first_failure, tries.waiting_since = 0, now, None

    def next_try(self, tries: Tries, failure: Failure, server_wait: float | None) -> float | None:
        """Seconds to wait before the next try of a failed request, or None: give up.

        ``server_wait`` is what the server asked for (``Retry-After``), if anything.
        """
        waiting = False
        if tries.attempt >= self.max_retries:
            assert tries.first_failure is not None
            if not self._waits_out(tries.first_failure, failure):
                return None
            waiting = True
            tries.waiting_since = tries.waiting_since or time.monotonic()
        backoff = random.uniform(0, min(_BACKOFF_CAP_S, _BACKOFF_BASE_S * 2**tries.attempt))
        if server_wait is None:
            delay = backoff
        else:  # what the server asked for, plus up to 10% so callers do not stampede
            delay = min(server_wait, _RETRY_AFTER_CAP_S) * random.uniform(1.0, 1.1)
        if waiting:  # probe often enough to notice the server is back
            delay = min(delay, random.uniform(0.5, 1.0) * _OUTAGE_PROBE_S)
        log.info(
            "LLM request failed (%s); retry %d in %.2f s",
            failure.detail,
            tries.attempt + 1,
            delay,
        )
        tries.attempt += 1
        return delay

    def _waits_out(self, first_failure: float, failure: Failure) -> bool:
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
