"""A small real OpenAI-compatible HTTP server on loopback, for tests and benchmarks.

It speaks ``POST /v1/chat/completions``, ``POST /v1/completions`` and ``GET /v1/models``
(HTTP/1.1 with keep-alive, plain asyncio streams), plus ``GET /stats`` and ``POST /reset``. It models a
serving engine with ``capacity`` slots and a ``service_time`` per request, records every
request it received (so tests can assert that nothing was asked twice), and plays
scripted replies and injected faults:

=================  ==================================================================
step               what the client gets
=================  ==================================================================
``ok``             a valid reply (default): a deterministic pseudo-translation
``429``            HTTP 429 with ``Retry-After: <retry_after>`` (default 1 s)
``500``            HTTP 500
``hang``           nothing for ``hang_s`` seconds (past the client's timeout)
``reset``          the TCP connection is aborted without a response
``malformed_json`` 200, content that is not JSON
``missing_ids``    200, valid JSON with the last entity id left out
``wrong_language`` 200, the source sentence copied as the "translation"
``truncated``      200, half of the JSON and ``finish_reason: length``
``empty``          200, an empty translation
``html_200``       200 with an HTML page (a gateway's error page), not JSON
``empty_choices``  200, ``{"choices": []}``
``non_utf8``       200 with bytes that are not UTF-8
``huge``           200, a 10 MB JSON body that is not a completion
``401``            HTTP 401 (the key refused) on completions; ``/v1/models`` still works
``trickle``        200 and a valid reply, one byte every ``trickle_s`` (default 0.5 s)
``{"content": s}`` 200, exactly ``s`` (with ``finish_reason`` if given)
=================  ==================================================================

``server.script(match, steps)``: requests whose user messages (or prompt) contain
``match`` get ``steps`` in order, then ``ok``. The pseudo-translation maps letters to Han
characters for CJK targets and other scripts to ASCII letters for the rest, so replies
pass the script check of the target language and every mention's translation occurs in
the translated sentence.

Read-backs are truthful: the server remembers what each pseudo-translation it handed out
says in the source language (the last ``remember`` of them), so a back-translation
(``BackTranslationReply``/``EntityBackTranslationReply``) of such a text gives the
original source sentence, and each listed mention reads back as the source words it
stands for: an entity's pseudo-translated mention exactly as its source mention, a span
cut short or run on as that much of the source, words the text does not hold as
themselves. A text it never handed out is answered as before (a pseudo-translation, no
mentions). The faults reach back-translations too (``missing_ids`` drops the last
mention).

``OpenAIServer(fault_mix={"500": 0.1, "429": 0.03, ...}, seed=1)``: every request that no
script matches draws its step at random from the mix (the rest ``ok``), with a seeded
generator. ``server.outage(seconds)`` (or ``set_down(True)`` / ``set_down(False)``) closes
the listening socket and drops open connections, as a crashed server does: connections are
refused until it is back. A ``hang`` ends early when the client gives up (closes the
connection), as vLLM aborts a request whose client went away. ``stats()["max_concurrent"]``
is the most completion requests the server held at once, answered or not (faults
included; ``/stats`` and ``/models`` are not counted).

Run it: ``python -m parallelner.testing.openai_server --port 8000 --service-time 1
--capacity 64``; in tests: ``with OpenAIServer(...) as srv: srv.base_url``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from parallelner.languages import script_of

__all__ = ["OpenAIServer", "pseudo_translate", "main"]

FAULTS = (
    "ok", "429", "500", "hang", "reset", "malformed_json", "missing_ids",
    "wrong_language", "truncated", "empty",
    # a broken server or gateway: answers that are not completions
    "html_200", "empty_choices", "non_utf8", "huge", "401",
    # a server that answers, one byte at a time: never idle long enough for a read timeout
    "trickle",
)  # fmt: skip
_HTML = b"<html><body><h1>502 Bad Gateway</h1><p>nginx</p></body></html>"
# 200 answers that are not completions (``huge`` is made when asked for)
_BROKEN: dict[str, tuple[bytes, str]] = {
    "html_200": (_HTML, "text/html"),
    "empty_choices": (b'{"id": "x", "object": "chat.completion", "choices": []}',
                      "application/json"),
    "non_utf8": (b'{"choices": [{"message": {"content": "\xff\xfe\x80"}}]}',
                 "application/json"),
    "huge": (b"", "application/json"),
}  # fmt: skip

_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 429: "Too Many Requests",
            500: "Internal Server Error"}  # fmt: skip


def pseudo_translate(text: str, tgt_lang: str) -> str:
    """Deterministic stand-in for a translation, written in ``tgt_lang``'s script."""
    return _pseudo_translate(text, tgt_lang)[0]


def _pseudo_translate(text: str, tgt_lang: str) -> tuple[str, tuple[int, ...]]:
    """The pseudo-translation and, per character of it, the index of the source
    character it stands for (CJK targets drop the spaces)."""
    if script_of(tgt_lang) == "CJK":
        pos = tuple(i for i, c in enumerate(text) if not c.isspace())
        out = "".join(
            chr(0x4E00 + (ord(text[i]) * 7) % 2000) if text[i].isalpha() else text[i] for i in pos
        )
        return out, pos
    out = "".join(
        chr(ord("a") + ord(c) % 26) if c.isalpha() and not c.isascii() else c for c in text
    )
    return out, tuple(range(len(text)))


@dataclass(frozen=True)
class _Said:
    """What a pseudo-translation that the server handed out says in the source language:
    the source sentence, each character's source index, and each entity's
    pseudo-translated mention with its source mention."""

    source: str
    index: tuple[int, ...]
    mentions: dict[str, str]

    def read(self, text: str, start: int, end: int) -> str:
        """What ``text[start:end]`` (a span of this pseudo-translation) says: an entity's
        mention reads as its source mention, any other span as the source words it
        stands for."""
        span = text[start:end]
        if span in self.mentions:
            return self.mentions[span]
        return self.source[self.index[start] : self.index[end - 1] + 1]


_SAID: dict[str, Any] = {}


@dataclass
class _Script:
    match: str
    steps: deque


@dataclass
class OpenAIServer:
    """The test server. ``start()`` runs it in a thread; ``serve()`` in the current loop."""

    host: str = "127.0.0.1"
    port: int = 0
    service_time: float = 0.0
    capacity: int = 64
    hang_s: float = 30.0
    trickle_s: float = 0.5  # seconds between two bytes of a ``trickle`` reply
    model: str = "test-model"
    # answers valid requests itself when set (e.g. ``testing.noisy.NoisyTranslator``):
    # called as responder(body, chat, user_text) -> (content, finish_reason) or None
    responder: Callable[[dict[str, Any], bool, str], tuple[str, str] | None] | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)
    _scripts: list[_Script] = field(default_factory=list)
    # step -> probability for requests no script matches (e.g. {"500": 0.1, "hang": 0.05})
    fault_mix: dict[str, float] | None = None
    seed: int = 0
    # ``GET /v1/models`` answers an HTML page (a URL that is not an OpenAI-compatible API)
    models_html: bool = False
    # an outage of ``outage_s`` seconds that starts when this many requests have come in
    outage_after: int | None = None
    outage_s: float = 60.0
    # pseudo-translations handed out and remembered, so that back-translations of them
    # are answered truthfully (the oldest forgotten beyond this many)
    remember: int = 200_000

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._busy = 0
        self._max_busy = 0
        self._busy_since = 0.0
        self._busy_slot_s = 0.0
        self._t0 = time.monotonic()
        self._server: asyncio.AbstractServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._sem: asyncio.Semaphore | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._readers: dict[asyncio.StreamWriter, asyncio.StreamReader] = {}
        self._open = 0  # requests received and not yet answered (faults included)
        self._pending: set[asyncio.StreamWriter] = set()  # connections with one open
        self._max_open = 0
        self._first_at: float | None = None  # first request since reset (monotonic)
        self._last_done_at: float | None = None  # latest answer or hang end
        self._down = False
        self._hung_slot_s = 0.0  # slot-seconds spent in hangs (no work done)
        self._answered: set[int] = set()  # hashes of request bodies answered with a 200
        self._repeated = 0  # ... answered again: replies paid twice
        self._rng = random.Random(self.seed)
        # pseudo-translation -> what it says: one memory for every server of the process,
        # as replicas of one model answer alike (a text one handed out, another reads back)
        self._said = _SAID
        if self.fault_mix:
            unknown = set(self.fault_mix) - set(FAULTS)
            if unknown:
                raise ValueError(f"unknown faults {sorted(unknown)}; known: {', '.join(FAULTS)}")
            if sum(self.fault_mix.values()) > 1.0 + 1e-9:
                raise ValueError("fault_mix probabilities add up to more than 1")

    # -- control ---------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """OpenAI base URL of the running server."""
        return f"http://{self.host}:{self.port}/v1"

    def script(self, match: str, steps: list[str | dict[str, Any]]) -> None:
        """Requests containing ``match`` get ``steps`` in order (then ``ok``)."""
        for s in steps:
            name = s if isinstance(s, str) else s.get("fault", "content")
            if name not in FAULTS and name != "content":
                raise ValueError(f"unknown fault {name!r}; known: {', '.join(FAULTS)}")
        with self._lock:
            self._scripts.append(_Script(match, deque(steps)))

    def requests_for(self, match: str) -> list[dict[str, Any]]:
        """Recorded requests whose user messages or prompt contain ``match``."""
        return [r for r in self.requests if match in r["text"]]

    def reset_log(self) -> None:
        """Forget recorded requests and the utilisation counters."""
        self.requests.clear()
        self._busy_slot_s = 0.0
        self._max_busy = self._busy
        self._max_open = self._open
        self._hung_slot_s = 0.0
        self._first_at = self._last_done_at = None
        self._t0 = time.monotonic()
        self._busy_since = self._t0

    def stats(self) -> dict[str, Any]:
        """Requests received, busy slot-seconds, peak busy slots, utilisation since reset."""
        now = time.monotonic()
        busy = self._busy_slot_s + self._busy * (now - self._busy_since)
        wall = now - self._t0
        return {
            "requests": len(self.requests),
            "capacity": self.capacity,
            "service_time": self.service_time,
            "wall_s": wall,
            "busy_slot_s": busy,
            "max_busy": self._max_busy,
            "max_concurrent": self._max_open,
            "repeated_answers": self._repeated,
            "hung_slot_s": self._hung_slot_s,  # ended hangs: busy slots that did no work
            # from the first request to the latest answer: the window a run kept it busy
            "active_wall_s": (
                (self._last_done_at or now) - self._first_at if self._first_at else 0.0
            ),
            "utilisation": busy / (self.capacity * wall) if wall > 0 else 0.0,
        }

    @property
    def down(self) -> bool:
        """True while an outage is in progress (connections refused)."""
        return self._down

    def set_down(self, down: bool) -> None:
        """Start (``True``) or end (``False``) an outage of a server run by ``start()``."""
        if self._loop is None:
            raise RuntimeError("the server is not running")
        coro = self._go_down() if down else self._come_up()
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    def outage(self, seconds: float) -> None:
        """Go down now and come back by itself after ``seconds`` (returns at once)."""
        self.set_down(True)
        assert self._loop is not None
        self._loop.call_soon_threadsafe(
            lambda: self._loop.call_later(  # type: ignore[union-attr]
                seconds, lambda: asyncio.ensure_future(self._come_up())
            )
        )

    def _start_outage(self) -> None:  # on the server's loop: down now, up in outage_s
        loop = asyncio.get_running_loop()
        asyncio.ensure_future(self._go_down())
        loop.call_later(self.outage_s, lambda: asyncio.ensure_future(self._come_up()))

    async def _go_down(self) -> None:
        if self._down:
            return
        self._down = True
        if self._server is not None:
            self._server.close()
            for w in list(self._writers):
                w.transport.abort()
            await self._server.wait_closed()
            self._server = None

    async def _come_up(self) -> None:
        if not self._down:
            return
        self._server = await asyncio.start_server(
            self._handle, self.host, self.port, backlog=4096, limit=1 << 22
        )
        self._down = False

    def start(self) -> OpenAIServer:
        """Run the server in a daemon thread; returns once it accepts connections."""
        ready = threading.Event()
        error: list[BaseException] = []

        def target() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._listen())
            except BaseException as exc:  # noqa: BLE001 - reported to the starting thread
                error.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._shutdown())
            loop.close()

        self._thread = threading.Thread(target=target, name="openai-test-server", daemon=True)
        self._thread.start()
        ready.wait()
        if error:
            raise error[0]
        return self

    def stop(self) -> None:
        """Stop a server started with ``start()``."""
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def serve(self) -> None:
        """Serve in the running event loop until cancelled."""
        await self._listen()
        try:
            await asyncio.Event().wait()
        finally:
            await self._shutdown()

    async def _listen(self) -> None:
        self._sem = asyncio.Semaphore(self.capacity)
        self._server = await asyncio.start_server(
            self._handle, self.host, self.port, backlog=4096, limit=1 << 22
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self.reset_log()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
            for w in list(self._writers):
                w.transport.abort()
            await self._server.wait_closed()
        for task in asyncio.all_tasks():
            if task is not asyncio.current_task():
                task.cancel()

    # -- HTTP ------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        self._readers[writer] = reader
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                parts = line.decode("latin-1").split(" ")
                if len(parts) < 2:
                    return
                method, path = parts[0], parts[1]
                headers: dict[str, str] = {}
                while True:
                    h = await reader.readline()
                    if h in (b"\r\n", b"\n", b""):
                        break
                    k, _, v = h.decode("latin-1").partition(":")
                    headers[k.strip().lower()] = v.strip()
                body = await reader.readexactly(int(headers.get("content-length") or 0))
                if method == "POST" and path.startswith("/v1/"):  # completions only
                    self._open += 1
                    self._pending.add(writer)
                    self._max_open = max(self._max_open, self._open)
                if self._first_at is None and method == "POST":
                    self._first_at = time.monotonic()
                try:
                    if not await self._dispatch(method, path, headers, body, writer):
                        return
                finally:
                    self._close_request(writer)
                    if method == "POST":
                        self._last_done_at = time.monotonic()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            return
        finally:
            self._writers.discard(writer)
            self._readers.pop(writer, None)
            writer.close()

    async def _respond(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        payload: Any,
        extra: dict[str, str] | None = None,
    ) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        await self._respond_raw(writer, status, data, "application/json", extra)

    async def _respond_raw(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        data: bytes,
        content_type: str,
        extra: dict[str, str] | None = None,
    ) -> None:
        # answered before the bytes leave: a client may send its next request on another
        # connection as soon as it reads them, before this coroutine runs again
        self._close_request(writer)
        head = [
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}",
            f"Content-Type: {content_type}",
            f"Content-Length: {len(data)}",
            "Connection: keep-alive",
        ]
        head += [f"{k}: {v}" for k, v in (extra or {}).items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + data)
        await writer.drain()

    async def _dispatch(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        raw: bytes,
        writer: asyncio.StreamWriter,
    ) -> bool:
        path = path.split("?")[0].rstrip("/")
        if method == "GET" and path == "/v1/models" and self.models_html:
            await self._respond_raw(writer, 200, _HTML, "text/html")
            return True
        if method == "GET" and path == "/v1/models":
            await self._respond(
                writer, 200, {"object": "list", "data": [{"id": self.model, "object": "model"}]}
            )
            return True
        if method == "GET" and path == "/stats":
            await self._respond(writer, 200, self.stats())
            return True
        if method == "POST" and path == "/reset":  # what reset_log() does, over HTTP
            self.reset_log()
            await self._respond(writer, 200, self.stats())
            return True
        if method != "POST" or path not in ("/v1/chat/completions", "/v1/completions"):
            await self._respond(writer, 404, {"error": {"message": f"no route {method} {path}"}})
            return True
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            await self._respond(writer, 400, {"error": {"message": "body is not JSON"}})
            return True
        chat = path.endswith("chat/completions")
        if self.outage_after is not None and len(self.requests) + 1 == self.outage_after:
            asyncio.get_running_loop().call_soon(self._start_outage)
        text = self._request_text(body, chat)
        step = self._next_step(text)
        fault = step if isinstance(step, str) else step.get("fault", "content")
        entry: dict[str, Any] = {"answered": False}
        self.requests.append(entry)
        entry.update(
            {
                "path": path,
                "body": body,
                "text": text,
                "fault": fault,
                "time": time.time(),
                # kept so tests can check the key was sent; this server is test-only
                "authorization": headers.get("authorization"),
            }
        )
        if fault == "429":
            after = str(step.get("retry_after", 1)) if isinstance(step, dict) else "1"
            await self._respond(
                writer, 429, {"error": {"message": "rate limited", "type": "rate_limit"}},
                {"Retry-After": after},
            )  # fmt: skip
            return True
        if fault == "500":
            await self._respond(writer, 500, {"error": {"message": "internal error"}})
            return True
        if fault == "reset":
            writer.transport.abort()
            return False
        if fault == "401":
            await self._respond(writer, 401, {"error": {"message": "invalid API key"}})
            return True
        broken = _BROKEN.get(fault)
        if broken is not None:
            if fault == "huge":  # made when asked for: 10 MB per request otherwise
                broken = (b'{"padding": "' + b"x" * 10_000_000 + b'"}', "application/json")
            await self._respond_raw(writer, 200, *broken)
            entry["answered"] = True
            return True
        assert self._sem is not None
        async with self._sem:
            self._slot(+1)
            try:
                if fault == "hang":
                    await self._hang(writer)
                    return False
                if fault == "trickle":
                    content, finish = self._content(body, chat, text, "ok")
                    data = json.dumps(self._completion(body, chat, content, finish)).encode()
                    return await self._trickle(writer, data)
                if self.service_time:
                    await asyncio.sleep(self.service_time)
                content, finish = self._content(body, chat, text, step)
                await self._respond(writer, 200, self._completion(body, chat, content, finish))
                entry["answered"] = True  # a 200 on its way: the client has paid for it
                h = hash(json.dumps(body, sort_keys=True))
                self._repeated += h in self._answered
                self._answered.add(h)
            finally:
                self._slot(-1)
        return True

    def _close_request(self, writer: asyncio.StreamWriter) -> None:
        if writer in self._pending:
            self._pending.discard(writer)
            self._open -= 1

    async def _hang(self, writer: asyncio.StreamWriter) -> None:
        """Answer nothing for ``hang_s`` seconds, or until the client closes the connection."""
        reader = self._readers.get(writer)
        t0 = time.monotonic()
        try:
            if reader is None:
                await asyncio.sleep(self.hang_s)
                return
            with contextlib.suppress(TimeoutError, ConnectionError):
                await asyncio.wait_for(reader.read(1), self.hang_s)  # b"": the client left
        finally:
            self._hung_slot_s += time.monotonic() - t0

    async def _trickle(self, writer: asyncio.StreamWriter, data: bytes) -> bool:
        """Send a whole reply, its body one byte every ``trickle_s``; False when the
        client left before the end (the connection is closed)."""
        self._close_request(writer)
        head = (
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\nConnection: keep-alive\r\n\r\n"
        )
        try:
            writer.write(head.encode("latin-1"))
            await writer.drain()
            for i in range(len(data)):
                await asyncio.sleep(self.trickle_s)
                if writer.is_closing():
                    return False
                writer.write(data[i : i + 1])
                await writer.drain()
        except ConnectionError:
            return False
        return True

    def _slot(self, delta: int) -> None:
        now = time.monotonic()
        self._busy_slot_s += self._busy * (now - self._busy_since)
        self._busy_since = now
        self._busy += delta
        self._max_busy = max(self._max_busy, self._busy)

    @staticmethod
    def _request_text(body: dict[str, Any], chat: bool) -> str:
        if not chat:
            prompt = body.get("prompt", "")
            return prompt if isinstance(prompt, str) else json.dumps(prompt)
        texts = []
        for m in body.get("messages", []):
            if m.get("role") == "user":
                c = m.get("content", "")
                texts.append(c if isinstance(c, str) else json.dumps(c))
        return "\n".join(texts)

    def _next_step(self, text: str) -> str | dict[str, Any]:
        with self._lock:
            for s in self._scripts:
                if s.match in text and s.steps:
                    return s.steps.popleft()
            if self.fault_mix:
                x = self._rng.random()
                for name, p in self.fault_mix.items():
                    if x < p:
                        return name
                    x -= p
        return "ok"

    def _content(
        self, body: dict[str, Any], chat: bool, text: str, step: str | dict[str, Any]
    ) -> tuple[str, str]:
        if isinstance(step, dict) and "content" in step:
            return step["content"], step.get("finish_reason", "stop")
        fault = step if isinstance(step, str) else step.get("fault", "ok")
        if fault == "ok" and self.responder is not None:
            answer = self.responder(body, chat, text)
            if answer is not None:
                return answer
        if not chat:
            return " ok", "stop"
        # our translation prompts carry a JSON payload in the first user message
        try:
            payload = json.JSONDecoder().raw_decode(text, text.index("{"))[0]
        except ValueError:
            payload = {}
        if not isinstance(payload, dict):
            payload = {}
        sentence = str(payload.get("sentence", text))
        tgt = str(payload.get("target_language", "zh"))
        fmt = body.get("response_format") or {}
        name = str((fmt.get("json_schema") or {}).get("name", "")) if isinstance(fmt, dict) else ""
        back = name.endswith("BackTranslationReply")
        said = self._said.get(sentence) if back else None
        translation, index = _pseudo_translate(sentence, tgt)
        if said is not None:  # a text we handed out: what it says, truthfully
            translation = said.source
        if fault == "wrong_language":
            translation = sentence
        if fault == "empty":
            translation = ""
        reply: dict[str, Any] = {"translation": translation}
        schema = json.dumps(fmt)
        if said is not None and ("mentions" in payload or '"mentions"' in schema):
            reads = self._read_back(sentence, said, payload.get("mentions") or [])
            if fault == "missing_ids" and reads:
                reads = reads[:-1]
            reply["mentions"] = reads
        elif "entities" in payload or '"entities"' in schema:
            ents = [
                {
                    "id": e.get("id"),
                    "source": e.get("text"),
                    "target": pseudo_translate(str(e.get("text")), tgt),
                }
                for e in payload.get("entities", [])
            ]
            if not back and fault in ("ok", "missing_ids"):
                self._remember(
                    translation,
                    _Said(sentence, index, {e["target"]: str(e["source"]) for e in ents}),
                )
            if fault == "missing_ids" and ents:
                ents = ents[:-1]
            reply["entities"] = ents
        content = json.dumps(reply, ensure_ascii=False)
        if fault == "malformed_json":
            return "Sure! Here is the translation: {translation: " + translation, "stop"
        if fault == "truncated":
            return content[: len(content) // 2], "length"
        return content, "stop"

    def _remember(self, translation: str, said: _Said) -> None:
        if translation in self._said or not translation:
            return
        if len(self._said) >= self.remember:
            del self._said[next(iter(self._said))]
        self._said[translation] = said

    @staticmethod
    def _read_back(sentence: str, said: _Said, mentions: list[Any]) -> list[dict[str, Any]]:
        """Each listed mention of ``sentence`` (a text the server handed out) read back
        truthfully (``_Said.read``); a mention that is not in the text as itself."""
        out, cursor = [], 0
        for m in mentions:
            if not isinstance(m, dict):
                continue
            mention = str(m.get("text", ""))
            # listed in the order they occur: a repeated string is unambiguous
            at = sentence.find(mention, cursor) if mention else -1
            if at == -1 and mention:
                at = sentence.find(mention)
            if at == -1:
                form = mention
            else:
                cursor = at + len(mention)
                form = said.read(sentence, at, at + len(mention))
            out.append({"id": m.get("id"), "translation": form})
        return out

    def _completion(
        self, body: dict[str, Any], chat: bool, content: str, finish: str
    ) -> dict[str, Any]:
        n = next(self._ids)
        usage = {
            "prompt_tokens": len(json.dumps(body.get("messages") or body.get("prompt", ""))) // 4,
            "completion_tokens": max(1, len(content) // 4),
        }
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        if chat:
            choice = {"index": 0, "message": {"role": "assistant", "content": content},
                      "finish_reason": finish, "logprobs": None}  # fmt: skip
            obj = "chat.completion"
        else:
            choice = {"index": 0, "text": content, "finish_reason": finish, "logprobs": None}
            obj = "text_completion"
        return {
            "id": f"cmpl-{n}",
            "object": obj,
            "created": int(time.time()),
            "model": body.get("model", self.model),
            "choices": [choice],
            "usage": usage,
        }


def main(argv: list[str] | None = None) -> None:
    """``python -m parallelner.testing.openai_server``: serve until interrupted."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--service-time", type=float, default=0.0, help="seconds per request")
    ap.add_argument("--capacity", type=int, default=64, help="requests served at once")
    ap.add_argument("--model", default="test-model")
    ap.add_argument("--hang-s", type=float, default=30.0, help="seconds a hang lasts at most")
    ap.add_argument(
        "--fault-mix", default="", help="random faults, e.g. 500=0.1,429=0.03,hang=0.05"
    )
    ap.add_argument("--seed", type=int, default=0, help="for --fault-mix and --gold")
    ap.add_argument("--outage-after", type=int, default=None, help="go down at request N")
    ap.add_argument("--outage-s", type=float, default=60.0, help="... for this many seconds")
    ap.add_argument(
        "--gold", nargs="+", metavar="JSONL",
        help="answer from these projection-dev pairs, with mistakes (testing.noisy)",
    )  # fmt: skip
    ap.add_argument("--mistake-rate", type=float, default=0.4, help="with --gold")
    args = ap.parse_args(argv)
    mix = {k: float(v) for k, v in (kv.split("=") for kv in args.fault_mix.split(",") if kv)}
    responder = None
    if args.gold:
        from parallelner.testing.noisy import NoisyTranslator, load_gold_pairs

        responder = NoisyTranslator(
            load_gold_pairs(args.gold), mistake_rate=args.mistake_rate, seed=args.seed
        )
    srv = OpenAIServer(
        host=args.host, port=args.port, service_time=args.service_time,
        capacity=args.capacity, model=args.model, hang_s=args.hang_s,
        fault_mix=mix or None, seed=args.seed, outage_after=args.outage_after,
        outage_s=args.outage_s, responder=responder,
    )  # fmt: skip

    async def _main() -> None:
        await srv._listen()
        print(f"listening on {srv.base_url}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await srv._shutdown()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main())


if __name__ == "__main__":
    main()
