"""Progress events of a run (``planned``, ``record``, ``shard``, ``llm_outage``,
``llm_stalled``, ``llm_endpoints_down``), delivered to the listeners of the current context.

A listener is installed for a block (``with listening(fn): ...``) in a context variable,
not in module state: every thread and task started inside the block (Prefect's thread
task runner copies the context) reports to it, and nothing leaks into other runs or
tests. With a Dask or Ray task runner the shards run elsewhere and only the Prefect
progress artifact moves.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator

__all__ = ["Listener", "listening", "notify", "listeners"]

Listener = Callable[[str, int], None]

_CURRENT: contextvars.ContextVar[tuple[Listener, ...]] = contextvars.ContextVar(
    "parallelner_progress", default=()
)


@contextlib.contextmanager
def listening(fn: Listener) -> Iterator[None]:
    """Call ``fn(event, n)`` for the progress events reported inside the block."""
    token = _CURRENT.set((*_CURRENT.get(), fn))
    try:
        yield
    finally:
        _CURRENT.reset(token)


@contextlib.contextmanager
def muted() -> Iterator[None]:
    """No listener hears the events reported inside the block (a batch round replays
    instances that the progress display has counted already)."""
    token = _CURRENT.set(())
    try:
        yield
    finally:
        _CURRENT.reset(token)


def listeners() -> tuple[Listener, ...]:
    """The listeners of the current context (to hand to a thread that does not inherit it)."""
    return _CURRENT.get()


def notify(event: str, n: int = 1, to: tuple[Listener, ...] | None = None) -> None:
    """Report ``n`` of ``event`` to the current listeners (or to ``to``)."""
    for fn in _CURRENT.get() if to is None else to:
        fn(event, n)
