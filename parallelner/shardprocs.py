"""Shards in worker processes: a run of this machine on all of its cores.

One process runs the instances of its shards on one core (Python's GIL): at zero
latency the client, not the LLM, is the limit. ``ShardProcesses`` starts ``processes``
workers (``spawn``: a fresh interpreter each, with none of Prefect's threads), each with
its own LLM runtime, and hands them shards:

- **One in-flight bound.** Each worker gets ``llm_max_in_flight // processes`` of it, so
  the run never has more requests on the wire than the setting says.
- **One reply cache.** Every worker opens the same cache (SQLite in WAL mode, or the
  Postgres URL): a reply one worker paid for is read by any other, and by the next run.
- **Fresh workers.** After ``RETIRE_AFTER`` shards a worker finishes what it holds and
  exits, and a new one takes its place (after it, so the bound holds): what a process's
  allocator keeps does not add up over a run of any size.
- **Two shards at a time per worker** (``SHARDS_PER_PROCESS``), on threads sharing the
  worker's runtime, so the requests of one shard's last instances overlap the next
  shard's first ones instead of leaving the bound idle at every shard's end.
- **Progress** (``parallelner.progress`` events) goes back to the caller's listeners,
  a few times a second; **errors** come back as themselves (a refused API key is still
  a ``ParallelNERError``); a worker that dies fails the shards it had (the caller's
  retry gets a new worker).
- **Stopping.** ``close`` lets each worker close its runtime (the reply cache is
  flushed) and collects its latency sample; a worker whose parent is gone (the run was
  stopped or killed) closes its runtime and exits within half a second. Workers ignore
  SIGINT: the run's own process handles Ctrl-C.

Rows are written by the worker (``pipeline.process_shard``, atomically), so a shard is
done, or not, exactly as in one process.
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import logging
import multiprocessing as mp
import multiprocessing.connection as mpc
import os
import pickle
import signal
import sys
import threading
import time
import types
from collections import Counter, deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from parallelner.progress import Listener, listening, notify

__all__ = [
    "ShardProcesses",
    "SHARDS_PER_PROCESS",
    "auto_processes",
    "current",
    "lean_memory",
    "using",
]

log = logging.getLogger(__name__)

SHARDS_PER_PROCESS = 2
# shards a worker processes before a fresh one takes its place: a process's allocator
# keeps part of what it freed, so a worker grew from 244 MB (13 shards, a 25,719-pair
# run) to 308 MB (129 shards, 257,190 pairs) with a Python heap that did not grow
RETIRE_AFTER = 32
# the run's size from which workers pay for their start (~1.5 s each): a smaller run is
# done sooner in one process
AUTO_MIN_INSTANCES = 20_000
_EVENT_EVERY_S = 0.25  # how often a worker sends its progress
_MAIN_LOCK = threading.Lock()
_SUMMED = ("requests", "answered", "errors", "rate_limited", "taken_out", "down_s")
_CURRENT: contextvars.ContextVar[ShardProcesses | None] = contextvars.ContextVar(
    "parallelner_shard_processes", default=None
)


@contextlib.contextmanager
def using(procs: ShardProcesses | None) -> Iterator[ShardProcesses | None]:
    """Shards started inside the block (threads and Prefect tasks inherit the context)
    go to ``procs`` (None: in this process)."""
    token = _CURRENT.set(procs)
    try:
        yield procs
    finally:
        _CURRENT.reset(token)


def current() -> ShardProcesses | None:
    """The worker processes of the current run, if it has any (see ``using``)."""
    return _CURRENT.get()


def auto_processes(instances: int, setting: int | None) -> int:
    """Worker processes for a run of ``instances``: the setting when given (0: none, the
    shards run on threads of this process), else one per core on a machine of two or
    more cores for a run of ``AUTO_MIN_INSTANCES`` or more, else none."""
    if setting is not None:
        return setting
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if (cores or 1) < 2 or instances < AUTO_MIN_INSTANCES:
        return 0
    return cores or 1


def lean_memory() -> None:
    """Arrow's buffers from the system allocator (its default, mimalloc, kept ~70 MB of
    freed buffers of a 12,000-pair run resident)."""
    import pyarrow as pa

    pa.set_memory_pool(pa.system_memory_pool())


def without_pandas() -> None:
    """From now on ``import pandas`` fails in this process: for worker processes only.

    Arrow imports pandas (50 MB in each process) at its first conversion of Python
    objects, only to recognise pandas objects, and tries again at every conversion until
    the import succeeds. A worker converts records, never pandas objects, and nothing a
    shard runs uses pandas.
    """
    if "pandas" not in sys.modules and _NO_PANDAS not in sys.meta_path:
        sys.meta_path.insert(0, _NO_PANDAS)


class _NoPandas:
    """An import hook under which ``import pandas`` fails (a ``None`` entry in
    ``sys.modules`` would not do: Arrow's compiled import takes it for the module)."""

    @staticmethod
    def find_spec(name: str, path: Any = None, target: Any = None) -> None:
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError(
                f"{name} is not imported in a worker process of a run (50 MB in each); "
                "a stage that needs it runs with `--processes 0`",
                name=name,
            )


_NO_PANDAS = _NoPandas()


def trim_memory() -> None:
    """Hand freed heap memory back to the system (glibc); a no-op elsewhere."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


@contextlib.contextmanager
def _main_not_rerun() -> Iterator[None]:
    """Start a spawned worker without running the caller's ``__main__`` again.

    ``spawn`` re-imports the main script in the child (to find pickled functions defined
    there); a user's script without an ``if __name__ == "__main__"`` guard would start its
    whole run again in every worker. The worker's code lives in this package, so the
    main module is announced as ``__main__`` by name, which ``multiprocessing`` skips.
    """
    main = sys.modules["__main__"]
    saved = main.__dict__.get("__spec__")
    with _MAIN_LOCK:
        main.__spec__ = types.SimpleNamespace(name="__main__")  # type: ignore[assignment]
        try:
            yield
        finally:
            main.__spec__ = saved


def _picklable(exc: BaseException) -> BaseException:
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")


class _Link:
    """A worker's end of its pipe: messages from several threads, one at a time."""

    def __init__(self, conn: Any):
        self.conn, self._lock = conn, threading.Lock()

    def send(self, msg: tuple) -> None:
        with self._lock:
            self.conn.send(msg)


class _Forward:
    """A worker's progress listener: counts events, sends the sums a few times a second."""

    def __init__(self, link: _Link):
        self._link, self._lock = link, threading.Lock()
        self._counts: Counter[str] = Counter()
        self._levels: dict[str, int] = {}  # events that report a level, not a count

    def __call__(self, event: str, n: int) -> None:
        with self._lock:
            if event.startswith("llm_"):
                self._levels[event] = n
            else:
                self._counts[event] += n

    def flush(self) -> None:
        with self._lock:
            counts, levels = dict(self._counts), dict(self._levels)
            self._counts.clear()
            self._levels.clear()
        if counts or levels:
            self._link.send(("events", counts, levels))


def _watch_parent(parent: int, stop: threading.Event, runtime: Any, forward: _Forward) -> None:
    while not stop.wait(_EVENT_EVERY_S):
        forward.flush()
        if os.getppid() != parent:  # the run's process is gone: stop paying for requests
            runtime.close()
            os._exit(0)


def _worker(settings: Any, conn: Any, per_process: int, parent: int) -> None:
    """A worker process: shards from its pipe through one runtime, results back on it.

    Each worker has a pipe of its own: a worker killed while it reads or writes takes no
    lock that the others need (a shared ``multiprocessing.Queue`` would keep its lock).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    lean_memory()
    without_pandas()
    from parallelner import pipeline
    from parallelner.llm.runtime import LLMRuntime

    link = _Link(conn)
    forward = _Forward(link)
    stop = threading.Event()
    with listening(forward):
        try:
            runtime = LLMRuntime(settings)
        except BaseException as exc:
            link.send(("broken", _picklable(exc)))
            return
        context = contextvars.copy_context()
    threading.Thread(
        target=_watch_parent, args=(parent, stop, runtime, forward), daemon=True
    ).start()

    def one(job_id: int, shard: Any, plan: Any) -> None:
        try:
            result = pipeline.process_shard(shard, plan, settings, runtime)
            forward.flush()
            link.send(("done", job_id, result))
        except BaseException as exc:
            forward.flush()
            link.send(("failed", job_id, _picklable(exc)))
        finally:
            trim_memory()

    # the caller sends at most ``per_process`` shards before one comes back
    with ThreadPoolExecutor(per_process, thread_name_prefix="shard") as pool:
        while True:
            try:
                job = conn.recv()
            except EOFError:  # the caller is gone
                break
            if job is None:
                break
            pool.submit(context.copy().run, one, *job)
    stop.set()
    usage = runtime.client.usage
    endpoints = runtime.client.endpoint_stats()
    runtime.close()  # the reply cache is flushed
    forward.flush()
    link.send(("final", list(usage.latencies_s), usage.answered_n, endpoints))


class _Proc:
    """The caller's view of one worker: its process, its pipe, the shards it holds."""

    def __init__(self, proc: Any, conn: Any):
        self.proc, self.conn = proc, conn
        self.jobs: set[int] = set()
        self.levels: dict[str, int] = {}
        self.given = 0  # shards sent to it over its life
        self.retiring = False  # it has had its ``retire_after`` shards: none is sent now
        self.ended = False


class ShardProcesses:
    """Worker processes that run ``pipeline.process_shard`` (see the module's text)."""

    def __init__(
        self,
        settings: Any,
        processes: int,
        *,
        per_process: int = SHARDS_PER_PROCESS,
        retire_after: int | None = RETIRE_AFTER,
    ):
        from parallelner.progress import listeners

        share = max(1, settings.llm_max_in_flight // processes)
        self._settings = settings.model_copy(update={"llm_max_in_flight": share})
        self._per_process = per_process
        self._retire_after = retire_after
        self._ctx = mp.get_context("spawn")
        self._listeners: tuple[Listener, ...] = listeners()
        self._ids = itertools.count()
        self._lock = threading.Lock()
        self._futures: dict[int, Future] = {}
        self._queued: deque[tuple[int, Any, Any]] = deque()
        self._procs: list[_Proc] = []
        self._finals: list[tuple] = []
        self._closed = False
        self._broken: BaseException | None = None
        for _ in range(processes):
            self._start_worker()
        self._reader = threading.Thread(target=self._read, name="shard-processes", daemon=True)
        self._reader.start()

    def _start_worker(self) -> None:
        mine, theirs = self._ctx.Pipe(duplex=True)
        proc = self._ctx.Process(
            target=_worker,
            args=(self._settings, theirs, self._per_process, os.getpid()),
            name="parallelner-shards",
            daemon=True,
        )
        with _main_not_rerun():
            proc.start()
        theirs.close()
        self._procs.append(_Proc(proc, mine))

    def submit(self, shard: Any, plan: Any) -> Future:
        """Process ``shard`` in a worker; the future holds its ``ShardResult``."""
        fut: Future = Future()
        with self._lock:
            if self._broken is not None:
                raise self._broken
            if self._closed:
                raise RuntimeError("the shard processes are closed")
            job = next(self._ids)
            self._futures[job] = fut
            self._queued.append((job, shard, plan))
            self._dispatch()
        return fut

    def process(self, shard: Any, plan: Any) -> Any:
        """``submit`` and wait: the shard's ``ShardResult``, or its error."""
        return self.submit(shard, plan).result()

    def _dispatch(self) -> None:
        # under the lock: queued shards to the workers with a free slot, the least busy first
        while self._queued:
            free = [
                p for p in self._procs
                if not p.ended and not p.retiring and len(p.jobs) < self._per_process
            ]  # fmt: skip
            if not free:
                return
            target = min(free, key=lambda p: len(p.jobs))
            job = self._queued.popleft()
            try:
                target.conn.send(job)
            except (OSError, ValueError):  # the worker is gone: the reader replaces it
                self._queued.appendleft(job)
                target.retiring = True
                continue
            target.jobs.add(job[0])
            target.given += 1
            if self._retire_after and target.given >= self._retire_after:
                # its last shard: it finishes what it holds and exits; its successor
                # starts when it has ended (the in-flight bound is never exceeded)
                with contextlib.suppress(OSError, ValueError):
                    target.conn.send(None)
                target.retiring = True

    def _settle(self, job: int, result: Any = None, error: BaseException | None = None) -> None:
        with self._lock:
            fut = self._futures.pop(job, None)
        if fut is None or fut.done():
            return
        if error is not None:
            fut.set_exception(error)
        else:
            fut.set_result(result)

    def _levels_changed(self, proc: _Proc, levels: dict[str, int]) -> None:
        # a level event (an outage's seconds, requests stalled) of the whole pool: the
        # highest of the workers' levels
        before = {k: max(p.levels.get(k, 0) for p in self._procs) for k in levels}
        proc.levels.update(levels)
        for k in levels:
            now = max(p.levels.get(k, 0) for p in self._procs)
            if now != before[k] or now:
                notify(k, now, to=self._listeners)

    def _on_message(self, proc: _Proc, msg: tuple) -> None:
        kind = msg[0]
        if kind == "events":
            for event, n in msg[1].items():
                notify(event, n, to=self._listeners)
            if msg[2]:
                self._levels_changed(proc, msg[2])
        elif kind in ("done", "failed"):
            with self._lock:
                proc.jobs.discard(msg[1])
                self._dispatch()
            if kind == "done":
                self._settle(msg[1], result=msg[2])
            else:
                self._settle(msg[1], error=msg[2])
        elif kind == "broken":  # a worker could not start its runtime: no shard can run
            with self._lock:
                self._broken = msg[1]
                jobs = list(self._futures)
                self._queued.clear()
            for job in jobs:
                self._settle(job, error=msg[1])
        elif kind == "final":
            self._finals.append(msg[1:])

    def _read(self) -> None:
        while True:
            with self._lock:
                live = [p for p in self._procs if not p.ended]
            if not live:
                return
            ready = mpc.wait([p.conn for p in live] + [p.proc.sentinel for p in live], 0.5)
            for proc in live:
                if proc.conn in ready:
                    try:
                        while proc.conn.poll():
                            self._on_message(proc, proc.conn.recv())
                    except (EOFError, OSError):
                        self._ended(proc)
                        continue
                if proc.proc.sentinel in ready:
                    try:  # what it sent before it ended
                        while proc.conn.poll():
                            self._on_message(proc, proc.conn.recv())
                    except (EOFError, OSError):
                        pass
                    self._ended(proc)

    def _ended(self, proc: _Proc) -> None:
        if proc.ended and not proc.proc.is_alive():
            return
        proc.proc.join(5)
        with self._lock:
            proc.ended = True
            lost = list(proc.jobs)
            proc.jobs.clear()
            replace = not self._closed and self._broken is None
            retired = proc.retiring and not lost
        for job in lost:
            self._settle(
                job,
                error=RuntimeError(
                    f"the worker process that had this shard died (exit code "
                    f"{proc.proc.exitcode}); the shard's finished replies are in the reply cache"
                ),
            )
        if replace:  # the queued shards go to a new worker
            if not retired:
                log.warning("a shard worker process died (exit code %s); starting another",
                            proc.proc.exitcode)  # fmt: skip
            with self._lock:
                self._start_worker()
                self._dispatch()

    def close(self, timeout: float = 60.0) -> None:
        """Let the workers finish what they hold, close their runtimes and exit."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            procs = list(self._procs)
        for p in procs:
            if not p.retiring:  # a retiring worker has had its None
                with contextlib.suppress(OSError, ValueError):
                    p.conn.send(None)
        deadline = time.monotonic() + timeout
        for p in procs:
            p.proc.join(max(0.1, deadline - time.monotonic()))
            if p.proc.is_alive():
                p.proc.terminate()
                p.proc.join(5)
        self._reader.join(timeout=10)
        with self._lock:
            left = list(self._futures)
        for job in left:
            self._settle(job, error=RuntimeError("the shard processes were closed"))

    def terminate(self, timeout: float = 10.0) -> None:
        """Stop the workers now (the run is stopping): no shard is waited for (every reply
        a worker received is in the reply cache already: a request ends when its reply is
        written)."""
        with self._lock:
            self._closed = True
        for p in self._procs:
            if p.proc.is_alive():
                p.proc.terminate()
        deadline = time.monotonic() + timeout
        for p in self._procs:
            p.proc.join(max(0.1, deadline - time.monotonic()))
            if p.proc.is_alive():
                p.proc.kill()

    def latencies(self) -> tuple[list[float], int]:
        """The workers' latency samples (after ``close``) and the requests they answered."""
        sample: list[float] = []
        for lat, _n, _ep in self._finals:
            sample.extend(lat)
        return sample, sum(n for _lat, n, _ep in self._finals)

    def endpoint_stats(self) -> list[dict[str, Any]]:
        """The endpoints' figures over all workers (after ``close``): counts summed, the
        latency percentiles and the smallest limit of the worker where they were worst."""
        merged: dict[str, dict[str, Any]] = {}
        for _lat, _n, endpoints in self._finals:
            for ep in endpoints:
                if ep["url"] not in merged:
                    merged[ep["url"]] = dict(ep)
                    continue
                into = merged[ep["url"]]
                for k, v in ep.items():
                    if k in _SUMMED:
                        into[k] = (into[k] or 0) + (v or 0)
                    elif k == "min_limit":
                        vals = [x for x in (into[k], v) if x is not None]
                        into[k] = min(vals) if vals else None
                    elif k != "url" and v is not None:
                        into[k] = v if into[k] is None else max(into[k], v)
        return list(merged.values())
