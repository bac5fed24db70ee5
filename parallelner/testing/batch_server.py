"""A loopback stand-in for the OpenAI Files and Batches endpoints, for tests and benchmarks.

It answers what the openai SDK's ``client.files`` and ``client.batches`` send:

=====================================  ==============================================
``POST /v1/files``                     multipart upload (``purpose=batch``): a file id
``GET /v1/files/{id}``                 the file object
``GET /v1/files/{id}/content``         the file's bytes (input, output or error file)
``POST /v1/batches``                   a batch of an uploaded JSONL input file
``GET /v1/batches``                    every batch, newest first (one page)
``GET /v1/batches/{id}``               the batch, advanced as time passes
``POST /v1/batches/{id}/cancel``       cancelled, with what was done so far
``GET /v1/models``                     the chat server's model (the CLI checks it)
``POST /v1/chat/completions``          online, as the real API also answers (the tail)
``GET /stats``                         files, batches and lines submitted
=====================================  ==============================================

Each line of a batch is answered by a ``parallelner.testing.openai_server.OpenAIServer``
(``chat``), exactly as that server answers the same body online: its ``responder`` (e.g.
the noisy translator), its scripts and its fault mix. A line whose step is a fault
(``500``, ``429``, ``malformed_json``...) becomes what the Batch API gives for it: an
HTTP error in the error file, or a 200 with the broken content in the output file.

A batch is ``validating``, then ``in_progress``, then ``completed`` ``complete_after_s``
seconds after it was created (a slow completion; 0: at the first poll). ``expire`` (a
set of batch numbers, 1 for the first created) ends those batches ``expired`` with the
first half of their lines answered and the rest in the error file
(``batch_expired``), as the real API does at the end of its window.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from parallelner.testing.openai_server import OpenAIServer

__all__ = ["BatchServer"]


@dataclass
class _Batch:
    number: int
    id: str
    input_file_id: str
    endpoint: str
    created_at: float
    metadata: dict[str, Any]
    status: str = "validating"
    output_file_id: str | None = None
    error_file_id: str | None = None
    total: int = 0
    completed: int = 0
    failed: int = 0
    ended_at: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "errors": None,
            "input_file_id": self.input_file_id,
            "completion_window": "24h",
            "status": self.status,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "created_at": int(self.created_at),
            "in_progress_at": None,
            "expires_at": int(self.created_at) + 86400,
            "completed_at": int(self.ended_at) if self.status == "completed" else None,
            "expired_at": int(self.ended_at) if self.status == "expired" else None,
            "cancelled_at": int(self.ended_at) if self.status == "cancelled" else None,
            "request_counts": {
                "total": self.total,
                "completed": self.completed,
                "failed": self.failed,
            },
            "metadata": self.metadata,
        }


@dataclass
class BatchServer:
    """The stand-in. ``with BatchServer(chat=srv) as b: b.base_url`` (``.../v1``)."""

    chat: OpenAIServer
    host: str = "127.0.0.1"
    port: int = 0
    complete_after_s: float = 0.0
    expire: set[int] = field(default_factory=set)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    batches: dict[str, _Batch] = field(default_factory=dict)
    lines_submitted: int = 0

    def __post_init__(self) -> None:
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    # -- control ---------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "files": len(self.files),
                "batches": len(self.batches),
                "lines_submitted": self.lines_submitted,
                "statuses": {b.id: b.status for b in self.batches.values()},
            }

    def start(self) -> BatchServer:
        def target() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            loop.run_until_complete(self._serve())
            self._ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup() if self._runner else asyncio.sleep(0))
            loop.close()

        self._thread = threading.Thread(target=target, name="batch-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("batch stand-in did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def __enter__(self) -> BatchServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _serve(self) -> None:
        app = web.Application(client_max_size=1 << 30)
        app.router.add_post("/v1/files", self._upload)
        app.router.add_get("/v1/files/{id}", self._file)
        app.router.add_get("/v1/files/{id}/content", self._content)
        app.router.add_post("/v1/batches", self._create)
        app.router.add_get("/v1/batches", self._list)
        app.router.add_get("/v1/batches/{id}", self._retrieve)
        app.router.add_post("/v1/batches/{id}/cancel", self._cancel)
        app.router.add_get("/stats", self._stats)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/chat/completions", self._online)
        app.router.add_post("/v1/completions", self._online)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    # -- files -----------------------------------------------------------------------

    def _add_file(self, data: bytes, filename: str, purpose: str) -> dict[str, Any]:
        fid = f"file-{next(self._ids)}"
        obj = {
            "id": fid,
            "object": "file",
            "bytes": len(data),
            "created_at": int(time.time()),
            "filename": filename,
            "purpose": purpose,
            "status": "processed",
        }
        with self._lock:
            self.files[fid] = {**obj, "data": data}
        return obj

    async def _upload(self, request: web.Request) -> web.Response:
        form = await request.post()
        upload = form.get("file")
        if upload is None or not hasattr(upload, "file"):
            return _error(400, "no file in the upload")
        data = upload.file.read()
        return web.json_response(
            self._add_file(data, upload.filename or "upload.jsonl", str(form.get("purpose", "")))
        )

    def _file_or_404(self, request: web.Request) -> dict[str, Any] | None:
        with self._lock:
            return self.files.get(request.match_info["id"])

    async def _file(self, request: web.Request) -> web.Response:
        f = self._file_or_404(request)
        if f is None:
            return _error(404, "no such file")
        return web.json_response({k: v for k, v in f.items() if k != "data"})

    async def _content(self, request: web.Request) -> web.Response:
        f = self._file_or_404(request)
        if f is None:
            return _error(404, "no such file")
        return web.Response(body=f["data"], content_type="application/jsonl")

    # -- batches ---------------------------------------------------------------------

    async def _create(self, request: web.Request) -> web.Response:
        body = await request.json()
        with self._lock:
            f = self.files.get(str(body.get("input_file_id")))
        if f is None:
            return _error(400, "input_file_id is not an uploaded file")
        lines = [ln for ln in f["data"].decode("utf-8").splitlines() if ln.strip()]
        number = len(self.batches) + 1
        b = _Batch(
            number=number,
            id=f"batch_{number:04d}",
            input_file_id=f["id"],
            endpoint=str(body.get("endpoint", "/v1/chat/completions")),
            created_at=time.time(),
            metadata=dict(body.get("metadata") or {}),
            total=len(lines),
        )
        with self._lock:
            self.batches[b.id] = b
            self.lines_submitted += len(lines)
        return web.json_response(b.as_dict())

    async def _list(self, request: web.Request) -> web.Response:
        with self._lock:
            data = [b.as_dict() for b in sorted(self.batches.values(), key=lambda b: -b.number)]
        return web.json_response({"object": "list", "data": data, "has_more": False,
                                  "first_id": data[0]["id"] if data else None,
                                  "last_id": data[-1]["id"] if data else None})  # fmt: skip

    async def _retrieve(self, request: web.Request) -> web.Response:
        with self._lock:
            b = self.batches.get(request.match_info["id"])
        if b is None:
            return _error(404, "no such batch")
        if b.status in ("validating", "in_progress"):
            if time.time() - b.created_at >= self.complete_after_s:
                self._finish(b, "expired" if b.number in self.expire else "completed")
            else:
                b.status = "in_progress"
        return web.json_response(b.as_dict())

    async def _cancel(self, request: web.Request) -> web.Response:
        with self._lock:
            b = self.batches.get(request.match_info["id"])
        if b is None:
            return _error(404, "no such batch")
        if b.status in ("validating", "in_progress"):
            self._finish(b, "cancelled")
        return web.json_response(b.as_dict())

    async def _online(self, request: web.Request) -> web.Response:
        """A request sent online, as the real API also takes them (full price)."""
        body = await request.json()
        status, reply = self._answer({"url": request.path, "body": body}, batch=False)
        return web.json_response(reply, status=status)

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"object": "list", "data": [{"id": self.chat.model, "object": "model"}]}
        )

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats())

    def _finish(self, b: _Batch, status: str) -> None:
        """Answer the batch's lines (all, or the first half when it expires or is
        cancelled) and write its output and error files."""
        with self._lock:
            data = self.files[b.input_file_id]["data"]
        lines = [json.loads(ln) for ln in data.decode("utf-8").splitlines() if ln.strip()]
        cut = len(lines) if status == "completed" else len(lines) // 2
        out, err = [], []
        for k, line in enumerate(lines):
            cid = line.get("custom_id")
            rid = f"batch_req_{b.number}_{k}"
            if k >= cut:
                code = "batch_expired" if status == "expired" else "batch_cancelled"
                err.append({"id": rid, "custom_id": cid, "response": None,
                            "error": {"code": code, "message": f"this request was {status}"}})  # fmt: skip
                continue
            status_code, body = self._answer(line)
            entry = {"id": rid, "custom_id": cid, "error": None,
                     "response": {"status_code": status_code, "request_id": rid, "body": body}}  # fmt: skip
            (out if status_code == 200 else err).append(entry)
        b.completed, b.failed = len(out), len(err)
        if out:
            b.output_file_id = self._add_file(_jsonl(out), f"{b.id}_output.jsonl", "batch_output")[
                "id"
            ]
        if err:
            b.error_file_id = self._add_file(_jsonl(err), f"{b.id}_error.jsonl", "batch_output")[
                "id"
            ]
        b.status, b.ended_at = status, time.time()

    def _answer(self, line: dict[str, Any], batch: bool = True) -> tuple[int, dict[str, Any]]:
        """What the chat server answers for this line's body, as a Batch API response."""
        body = line.get("body") or {}
        chat = str(line.get("url", "")).endswith("chat/completions")
        srv = self.chat
        text = srv._request_text(body, chat)
        step = srv._next_step(text)
        fault = step if isinstance(step, str) else step.get("fault", "content")
        srv.requests.append({"path": line.get("url"), "body": body, "text": text,
                             "fault": fault, "time": time.time(), "answered": True,
                             "batch": batch})  # fmt: skip
        if fault in ("429", "500", "401", "reset", "hang", "html_200", "non_utf8", "huge"):
            code = {"429": 429, "401": 401}.get(fault, 500)
            return code, {"error": {"message": f"stand-in fault {fault}", "type": "server_error"}}
        if fault == "empty_choices":
            return 200, {"id": "x", "object": "chat.completion", "choices": []}
        content, finish = srv._content(body, chat, text, "ok" if fault == "trickle" else step)
        return 200, srv._completion(body, chat, content, finish)


def _jsonl(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")


def _error(status: int, message: str) -> web.Response:
    return web.json_response(
        {"error": {"message": message, "type": "invalid_request"}}, status=status
    )
