"""The LLM client's HTTP layer (``parallelner.llm.transport``) against a real loopback server
that misbehaves the ways real servers and proxies do."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Awaitable, Callable

import pytest

from parallelner.errors import LLMError
from parallelner.llm.client import LLMClient
from parallelner.llm.transport import (
    BadResponse,
    ConnectFailed,
    ConnectionLost,
    HTTPClient,
    StatusError,
)
from parallelner.reasons import Reason

COMPLETION = {
    "id": "c1",
    "object": "chat.completion",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "{}"}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 7, "completion_tokens": 2},
}

Step = Callable[[asyncio.StreamWriter, dict], Awaitable[bool]]  # True: keep the connection


def _reply(status: int, body: bytes, *headers: str, reason: str = "X") -> bytes:
    head = [f"HTTP/1.1 {status} {reason}", *headers]
    if not any(h.lower().startswith(("content-length", "transfer-encoding")) for h in headers):
        head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def ok(body: dict | None = None, *headers: str) -> Step:
    async def step(w, req):
        w.write(_reply(200, json.dumps(body or COMPLETION).encode(), *headers))
        return True

    return step


def raw(data: bytes, keep: bool = True) -> Step:
    async def step(w, req):
        w.write(data)
        await w.drain()
        return keep

    return step


def reset_after(data: bytes) -> Step:
    async def step(w, req):
        w.write(data)
        await w.drain()
        w.transport.abort()
        return False

    return step


def hang() -> Step:
    async def step(w, req):
        await asyncio.sleep(30)
        return False

    return step


class Server:
    """A loopback HTTP server answering each request with the next scripted step
    (then ``ok()``); records requests and connections."""

    def __init__(self, steps: list[Step]):
        self.steps = list(steps)
        self.requests: list[dict] = []
        self.connections = 0

    async def __aenter__(self) -> Server:
        self.srv = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.srv.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        self.srv.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def _handle(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                line = await r.readline()
                if not line:
                    return
                headers = {}
                while (h := await r.readline()) not in (b"\r\n", b""):
                    k, _, v = h.decode().partition(":")
                    headers[k.strip().lower()] = v.strip()
                body = await r.readexactly(int(headers.get("content-length", 0)))
                req = {"line": line.decode().strip(), "headers": headers, "body": body}
                self.requests.append(req)
                step = self.steps.pop(0) if self.steps else ok()
                if not await step(w, req):
                    return
                await w.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            w.close()


def _run(coro):
    return asyncio.run(coro)


def test_wire_format_bearer_json_and_keep_alive():
    async def go():
        async with Server([]) as srv:
            http = HTTPClient(srv.url, api_key="sk-secret")
            a = await http.post_json("/chat/completions", {"model": "m", "messages": []})
            b = await http.post_json("/chat/completions", {"model": "m", "x": "é"})
            await http.aclose()
            return a, b, srv

    a, b, srv = _run(go())
    assert a == COMPLETION == b
    first, second = srv.requests
    assert first["line"] == "POST /v1/chat/completions HTTP/1.1"
    assert first["headers"]["authorization"] == "Bearer sk-secret"
    assert first["headers"]["content-type"] == "application/json"
    assert json.loads(second["body"]) == {"model": "m", "x": "é"}
    assert srv.connections == 1  # the second request reused the connection


def test_refused_connection_is_not_sent():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: refused

    async def go():
        http = HTTPClient(f"http://127.0.0.1:{port}/v1")
        with pytest.raises(ConnectFailed) as err:
            await http.post_json("/chat/completions", {})
        return err.value

    assert _run(go()).cause == "ConnectError"


@pytest.mark.parametrize(
    "step, cause",
    [
        (reset_after(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"choi'), "ReadError"),
        (reset_after(b"HTTP/1.1 200 OK\r\nContent-Le"), "ReadError"),
        (reset_after(b""), "RemoteProtocolError"),  # closed before any byte, fresh connection
        (raw(b"SSH-2.0-OpenSSH_9.6\r\n\r\n", keep=False), "RemoteProtocolError"),
    ],
    ids=["reset mid-body", "reset mid-headers", "closed at once", "not HTTP"],
)
def test_a_broken_reply_is_a_lost_connection(step, cause):
    async def go():
        async with Server([step]) as srv:
            http = HTTPClient(srv.url)
            with pytest.raises(ConnectionLost) as err:
                await http.post_json("/chat/completions", {})
            # the client is still usable afterwards (a new connection)
            again = await http.post_json("/chat/completions", {})
            return err.value, again

    err, again = _run(go())
    assert err.cause == cause and again == COMPLETION


def test_5xx_with_an_html_body_and_429_with_retry_after():
    html = b"<html><body><h1>502 Bad Gateway</h1> nginx</body></html>"
    steps = [
        raw(_reply(502, html, "Content-Type: text/html")),
        raw(_reply(429, b'{"error": {"message": "slow down"}}', "Retry-After: 3")),
    ]

    async def go():
        async with Server(steps) as srv:
            http = HTTPClient(srv.url)
            errors = []
            for _ in range(2):
                with pytest.raises(StatusError) as err:
                    await http.post_json("/chat/completions", {})
                errors.append(err.value)
            return errors, srv.connections

    (bad_gateway, limited), connections = _run(go())
    assert bad_gateway.status == 502 and "502 Bad Gateway" in bad_gateway.message
    assert limited.status == 429 and limited.message == "slow down"
    assert limited.headers["retry-after"] == "3"
    assert connections == 1  # an error answer with a length keeps the connection


def test_chunked_reply_and_reply_without_length():
    body = json.dumps(COMPLETION).encode()
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    for i in range(0, len(body), 10):
        part = body[i : i + 10]
        chunked += f"{len(part):x}\r\n".encode() + part + b"\r\n"
    chunked += b"0\r\n\r\n"
    to_close = b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n" + body
    steps = [raw(chunked), raw(to_close, keep=False)]

    async def go():
        async with Server(steps) as srv:
            http = HTTPClient(srv.url)
            out = [await http.post_json("/chat/completions", {}) for _ in range(3)]
            return out, srv.connections

    out, connections = _run(go())
    assert out == [COMPLETION] * 3
    assert connections == 2  # the reply that ran to the end of its connection closed it


def test_a_keep_alive_connection_the_server_closed_is_not_reused():
    async def close_later(w, req):  # answers, says keep-alive, then closes while idle
        w.write(_reply(200, json.dumps(COMPLETION).encode()))
        await w.drain()
        await asyncio.sleep(0.05)
        return False

    async def go():
        async with Server([close_later, ok(None, "Connection: close")]) as srv:
            http = HTTPClient(srv.url)
            first = await http.post_json("/chat/completions", {"n": 1})
            await asyncio.sleep(0.2)  # the server has closed the idle connection by now
            second = await http.post_json("/chat/completions", {"n": 2})  # Connection: close
            third = await http.post_json("/chat/completions", {"n": 3})
            return [first, second, third], srv

    out, srv = _run(go())
    assert out == [COMPLETION] * 3
    assert [json.loads(r["body"])["n"] for r in srv.requests] == [1, 2, 3]  # each sent once
    assert srv.connections == 3


def test_a_reset_after_the_request_arrived_is_never_resent_silently():
    async def go():
        async with Server([ok(), reset_after(b"")]) as srv:
            http = HTTPClient(srv.url)
            await http.post_json("/chat/completions", {"n": 1})
            with pytest.raises(ConnectionLost):  # on the reused connection
                await http.post_json("/chat/completions", {"n": 2})
            return srv

    srv = _run(go())
    assert [json.loads(r["body"])["n"] for r in srv.requests] == [1, 2]  # the caller counts it


def test_a_hung_request_times_out_and_its_connection_is_not_reused():
    async def go():
        async with Server([hang()]) as srv:
            http = HTTPClient(srv.url, timeout=0.3)
            with pytest.raises(TimeoutError):
                await http.post_json("/chat/completions", {})
            again = await http.post_json("/chat/completions", {})
            return again, srv.connections

    again, connections = _run(go())
    assert again == COMPLETION and connections == 2


def test_a_200_that_is_not_json():
    async def go():
        async with Server([raw(_reply(200, b"<html>maintenance</html>"))]) as srv:
            http = HTTPClient(srv.url)
            with pytest.raises(BadResponse):
                await http.post_json("/chat/completions", {})

    _run(go())


# -- through the LLM client: retries and failure reasons --------------------------------


async def _ask(c: LLMClient) -> object:
    from pydantic import BaseModel

    class Empty(BaseModel):
        pass

    return await c.chat_json([{"role": "user", "content": "q"}], Empty, prompt_version="t.v1")


def _client(url: str, tmp_path, **kw) -> LLMClient:
    opts = {"timeout_s": 2.0, "max_retries": 2, "cache_path": tmp_path / "c.sqlite", **kw}
    return LLMClient(base_url=url, model="m", api_key="sk-top-secret-key", **opts)


def test_client_retries_html_5xx_resets_and_429_then_counts_tokens(tmp_path):
    steps = [
        raw(_reply(503, b"<html>sk-top-secret-key Service Unavailable</html>")),
        reset_after(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"),
        raw(_reply(429, b"{}", "Retry-After: 0.1")),
    ]

    async def go():
        async with Server(steps) as srv, _client(srv.url, tmp_path, max_retries=3) as c:
            out = await _ask(c)
            return out, c.usage, srv.requests

    out, usage, requests = _run(go())
    assert out.ok
    assert usage.requests == 4 and usage.retries == 3 and usage.failures == 0
    assert usage.prompt_tokens == 7 and usage.completion_tokens == 2
    assert all(r["headers"]["authorization"] == "Bearer sk-top-secret-key" for r in requests)


def test_a_refused_key_stops_at_once_and_the_message_never_shows_it(tmp_path):
    page = b"<html>bad key sk-top-secret-key</html>"

    async def go():
        async with Server([raw(_reply(401, page))]) as srv, _client(srv.url, tmp_path) as c:
            with pytest.raises(LLMError) as err:
                await _ask(c)
            return str(err.value), c.usage

    message, usage = _run(go())
    assert "HTTP 401" in message and "refused the API key" in message and "bad key" in message
    assert "sk-top-secret-key" not in message
    assert usage.requests == 1 and usage.retries == 0  # not retried: every request would fail


def test_a_200_that_is_not_a_completion_is_retried_then_left_for_the_next_run(tmp_path):
    """A gateway's HTML page, no choices, bytes that are not UTF-8: the server is broken,
    not the question. Retried as a 5xx is; still broken, the failure is transient (the
    shard stays unfinished and the next run asks again), never a final answer."""
    broken = [
        raw(_reply(200, b"<html>502 Bad Gateway</html>")),
        ok({"choices": []}),
        raw(_reply(200, b'{"choices": [{"message": {"content": "\xff\xfe"}}]}')),
    ]

    async def go():
        async with Server(list(broken)) as srv, _client(srv.url, tmp_path, max_retries=3) as c:
            fixed = await _ask(c)  # three broken answers, then the server's default: ok
        again = {"max_retries": 2, "cache_path": tmp_path / "fresh.sqlite"}
        async with Server(broken * 3) as srv, _client(srv.url, tmp_path, **again) as c:
            left = await _ask(c)
            return fixed, left, c.usage

    fixed, left, usage = _run(go())
    assert fixed.ok
    assert left.reason is Reason.LLM_HTTP_ERROR and "not a completion" in left.detail
    assert usage.retries == 2 and usage.transient_failures == 1


def test_client_refused_counts_a_connect_failure(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def go():
        async with _client(f"http://127.0.0.1:{port}/v1", tmp_path, max_retries=1) as c:
            return await _ask(c), c.usage

    out, usage = _run(go())
    assert out.reason is Reason.LLM_UNREACHABLE and "ConnectError" in out.detail
    assert usage.connect_failures == 2 and usage.requests == 0


def test_the_proxy_the_environment_names_is_used(monkeypatch):
    for var in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    refused = raw(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n", keep=False)

    async def go():
        async with Server([ok(), refused]) as proxy:
            monkeypatch.setenv("HTTP_PROXY", f"http://u:p%40ss@127.0.0.1:{proxy.port}")
            monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.port}")
            plain = HTTPClient("http://llm.invalid:8000/v1", api_key="k")
            out = await plain.post_json("/chat/completions", {})
            tls = HTTPClient("https://api.invalid/v1", api_key="k")
            with pytest.raises(ConnectFailed):  # the proxy refused the tunnel
                await tls.post_json("/chat/completions", {})
            return out, proxy.requests

    out, (via_proxy, connect) = _run(go())
    assert out == COMPLETION
    assert via_proxy["line"] == "POST http://llm.invalid:8000/v1/chat/completions HTTP/1.1"
    assert via_proxy["headers"]["proxy-authorization"] == "Basic dTpwQHNz"  # u:p@ss
    assert connect["line"] == "CONNECT api.invalid:443 HTTP/1.1"
    assert "authorization" not in connect["headers"]  # the API key stays inside the tunnel
