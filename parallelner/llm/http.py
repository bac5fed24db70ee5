"""A small HTTP/1.1 client for OpenAI-compatible servers: JSON in, JSON out.

The LLM client's request path (``LLMClient._send``). It exists for speed: at hundreds
of requests per second the OpenAI SDK's request building and httpx's connection pool
(which scans every connection on each request) cost ~10 ms of CPU per request, this
~0.3 ms. It speaks exactly what the server needs: ``POST`` / ``GET`` with a JSON body,
``Authorization: Bearer``, keep-alive connections (HTTP/1.1, ``Content-Length`` or
chunked replies, ``Connection: close`` honoured), plain TCP or TLS, directly or through
the proxy that ``HTTP_PROXY`` / ``HTTPS_PROXY`` / ``NO_PROXY`` name (as the SDK did):
``http://`` URLs in absolute form, ``https://`` ones through a ``CONNECT`` tunnel.

Connections are kept in a stack of idle ones (O(1) to take and to give back). A
connection is never shared by two requests; one whose request was cancelled or failed is
closed, never reused. An idle connection that the server has closed (keep-alive
timeout) is seen closed before it is used and dropped. A request is never sent twice
here: a connection that fails after the request went out is a ``ConnectionLost`` for the
caller to count and retry (the server may have received the request, as a server that
resets connections does).

Failures are exceptions of this module: ``ConnectFailed`` (nothing was sent),
``ConnectionLost`` (reset or closed after sending, or a reply that is not HTTP),
``StatusError`` (an HTTP answer >= 400, with its headers) and ``BadResponse`` (a 2xx
whose body is not JSON). The API key is only ever written into the request header.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import urllib.parse
import urllib.request
from typing import Any

try:  # orjson is 5-10x faster; json is the fallback
    import orjson

    _dumps = orjson.dumps
    _loads = orjson.loads
except ImportError:  # pragma: no cover - orjson ships with prefect
    import json

    def _dumps(obj: Any) -> bytes:
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    _loads = json.loads

__all__ = [
    "HTTPClient",
    "HTTPError",
    "ConnectFailed",
    "ConnectionLost",
    "StatusError",
    "BadResponse",
]

_MAX_LINE = 1 << 16  # longest status or header line accepted
_USER_AGENT = "parallelner"


class HTTPError(Exception):
    """A request got no usable HTTP answer; ``cause`` names the kind in one word."""

    cause = "HTTPError"


class ConnectFailed(HTTPError):
    """No connection could be made (refused, unknown host, connect timeout): not sent."""

    def __init__(self, cause: str, detail: str = ""):
        self.cause = cause  # "ConnectError" or "ConnectTimeout"
        super().__init__(detail or cause)


class ConnectionLost(HTTPError):
    """The connection was reset or closed after the request was sent, or the reply was
    not HTTP: the request may or may not have reached the server."""

    def __init__(self, cause: str, detail: str = ""):
        self.cause = cause  # "ReadError", "RemoteProtocolError", "WriteError"
        super().__init__(detail or cause)


class StatusError(HTTPError):
    """An HTTP answer with status >= 400: its status, message and (lower-case) headers."""

    cause = "HTTPStatusError"

    def __init__(self, status: int, message: str, headers: dict[str, str]):
        self.status = status
        self.message = message
        self.headers = headers
        super().__init__(f"HTTP {status}: {message}")


class BadResponse(HTTPError):
    """A 2xx answer whose body is not JSON."""

    cause = "BadResponse"


def _error_message(status: int, body: bytes) -> str:
    """The server's own error message (OpenAI's ``{"error": {"message"}}``), else the
    start of the body as text (an HTML error page from a proxy, say)."""
    try:
        data = _loads(body)
        err = data.get("error") if isinstance(data, dict) else None
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])[:300]
        if isinstance(err, str):
            return err[:300]
        if isinstance(data, dict) and data.get("message"):
            return str(data["message"])[:300]
    except (ValueError, TypeError):
        pass
    text = " ".join(body[:300].decode("utf-8", "replace").split())
    return text or f"status {status} with an empty body"


class _Conn:
    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer

    def usable(self) -> bool:
        return not (self.writer.is_closing() or self.reader.at_eof())

    def close(self) -> None:
        self.writer.close()


def proxy_for(url: str) -> str | None:
    """The proxy URL the environment names for ``url`` (``*_PROXY``, ``NO_PROXY``)."""
    parts = urllib.parse.urlsplit(url)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if not proxy or urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return proxy


class HTTPClient:
    """Keep-alive JSON requests to one base URL (e.g. ``http://host:8000/v1``)."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float | None = None,
        headers: dict[str, str] | None = None,
        proxy: str | None = None,
        trust_env: bool = True,
    ):
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"not an http(s) URL: {parts.scheme}://...")
        self.base_url = base_url
        self.host = parts.hostname or "localhost"
        self.tls = parts.scheme == "https"
        self.port = parts.port or (443 if self.tls else 80)
        self.path = parts.path.rstrip("/")
        self.timeout = timeout
        self._ssl: ssl.SSLContext | None = ssl.create_default_context() if self.tls else None
        host = self.host if ":" not in self.host else f"[{self.host}]"
        default_port = (443 if self.tls else 80) == self.port
        fixed = {
            "Host": host if default_port else f"{host}:{self.port}",
            "User-Agent": _USER_AGENT,
            "Accept": "application/json",
            **({"Authorization": f"Bearer {api_key}"} if api_key else {}),
            **(headers or {}),
        }
        self.proxy = proxy or (proxy_for(base_url) if trust_env else None)
        self._proxy_auth = ""
        if self.proxy:
            p = urllib.parse.urlsplit(self.proxy if "://" in self.proxy else f"http://{self.proxy}")
            self._proxy_addr = (p.hostname or "localhost", p.port or 80)
            if p.username:
                cred = (
                    f"{urllib.parse.unquote(p.username)}:{urllib.parse.unquote(p.password or '')}"
                )
                self._proxy_auth = (
                    f"Proxy-Authorization: Basic {base64.b64encode(cred.encode()).decode()}\r\n"
                )
            if not self.tls:  # a plain-HTTP request goes to the proxy in absolute form
                self.path = f"http://{fixed['Host']}{self.path}"
                fixed["Proxy-Connection"] = "keep-alive"
        self._head = "".join(f"{k}: {v}\r\n" for k, v in fixed.items())
        if self.proxy and not self.tls:
            self._head += self._proxy_auth
        self._idle: list[_Conn] = []
        self._closed = False

    # -- public --------------------------------------------------------------------------

    async def post_json(self, path: str, body: Any) -> Any:
        """POST ``body`` as JSON to ``base_url + path``; the decoded JSON reply."""
        payload = _dumps(body)
        head = (
            f"POST {self.path}{path} HTTP/1.1\r\n{self._head}"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
        )
        return await self._request(head.encode("latin-1") + payload)

    async def get_json(self, path: str) -> Any:
        """GET ``base_url + path``; the decoded JSON reply."""
        head = f"GET {self.path}{path} HTTP/1.1\r\n{self._head}\r\n"
        return await self._request(head.encode("latin-1"))

    async def aclose(self) -> None:
        """Close the idle connections; requests in flight close theirs when done."""
        self._closed = True
        while self._idle:
            self._idle.pop().close()

    # -- internals -----------------------------------------------------------------------

    async def _request(self, data: bytes) -> Any:
        if self._closed:
            raise RuntimeError("the HTTP client is closed")
        if self.timeout is None:
            return await self._exchange(data)
        async with asyncio.timeout(self.timeout):
            return await self._exchange(data)

    async def _exchange(self, data: bytes) -> Any:
        conn = self._take() or await self._connect()
        keep = False
        try:
            status, headers, body, keep = await self._roundtrip(conn, data)
        finally:
            if keep and not self._closed:
                self._idle.append(conn)
            else:
                conn.close()
        if status >= 400:
            raise StatusError(status, _error_message(status, body), headers)
        try:
            return _loads(body)
        except ValueError as exc:
            raise BadResponse(f"the reply is not JSON ({exc})") from None

    def _take(self) -> _Conn | None:
        idle = self._idle
        while idle:
            conn = idle.pop()
            if conn.usable():
                return conn
            conn.close()
        return None

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if not self.proxy:
            return await asyncio.open_connection(
                self.host,
                self.port,
                ssl=self._ssl,
                server_hostname=self.host if self.tls else None,
                limit=_MAX_LINE,
            )
        reader, writer = await asyncio.open_connection(*self._proxy_addr, limit=_MAX_LINE)
        if self.tls:  # a tunnel to the server, then TLS inside it
            target = f"{self.host}:{self.port}"
            writer.write(
                f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n{self._proxy_auth}\r\n".encode()
            )
            line = await reader.readline()
            while await reader.readline() not in (b"\r\n", b"\n", b""):
                pass
            if line.split(None, 2)[1:2] != [b"200"]:
                writer.close()
                raise ConnectionRefusedError(f"the proxy answered {line.strip()[:60]!r}")
            await writer.start_tls(self._ssl, server_hostname=self.host)
        return reader, writer

    async def _connect(self) -> _Conn:
        try:
            reader, writer = await asyncio.wait_for(self._open(), self.timeout)
        except TimeoutError:
            detail = f"connect to {self.host}:{self.port} timed out"
            raise ConnectFailed("ConnectTimeout", detail) from None
        except OSError as exc:  # refused, unreachable, unknown host, TLS handshake
            raise ConnectFailed("ConnectError", f"{type(exc).__name__}: {exc}") from None
        return _Conn(reader, writer)

    async def _roundtrip(self, conn: _Conn, data: bytes) -> tuple[int, dict[str, str], bytes, bool]:
        reader, writer = conn.reader, conn.writer
        try:
            writer.write(data)
            if writer.transport.get_write_buffer_size() > 1 << 16:
                await writer.drain()
            line = await reader.readline()
        except (ConnectionError, OSError) as exc:
            raise ConnectionLost("WriteError", f"{type(exc).__name__} while sending") from None
        except ValueError:  # a line past the limit
            raise ConnectionLost("RemoteProtocolError", "status line too long") from None
        if not line:
            raise ConnectionLost("RemoteProtocolError", "the server closed the connection")
        try:
            return await self._read_reply(reader, line)
        except asyncio.IncompleteReadError:
            raise ConnectionLost("ReadError", "the connection closed mid-reply") from None
        except (ConnectionError, OSError) as exc:
            raise ConnectionLost("ReadError", f"{type(exc).__name__} mid-reply") from None
        except ValueError as exc:  # malformed framing, or a line past the limit
            raise ConnectionLost("RemoteProtocolError", f"not an HTTP reply ({exc})") from None

    async def _read_reply(
        self, reader: asyncio.StreamReader, line: bytes
    ) -> tuple[int, dict[str, str], bytes, bool]:
        while True:
            if not line.endswith(b"\n"):
                raise asyncio.IncompleteReadError(line, None)
            parts = line.split(None, 2)
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
                raise ValueError(f"status line {line[:40]!r}")
            status = int(parts[1])
            headers: dict[str, str] = {}
            while True:
                h = await reader.readline()
                if h in (b"\r\n", b"\n"):
                    break
                if not h.endswith(b"\n"):  # the connection ended mid-line
                    raise asyncio.IncompleteReadError(h, None)
                k, sep, v = h.decode("latin-1").partition(":")
                if not sep:
                    raise ValueError(f"header line {h[:40]!r}")
                headers[k.strip().lower()] = v.strip()
            if 100 <= status < 200:  # 100 Continue and friends: the real reply follows
                line = await reader.readline()
                continue
            break
        keep = parts[0] == b"HTTP/1.1" and headers.get("connection", "").lower() != "close"
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = await self._read_chunked(reader)
        elif "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        elif status in (204, 304):
            body = b""
        else:  # no length: the body runs to the end of the connection
            body = await reader.read()
            keep = False
        return status, headers, body, keep

    @staticmethod
    async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
        chunks = []
        while True:
            size_line = await reader.readline()
            if not size_line:
                raise asyncio.IncompleteReadError(b"", None)
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                while (t := await reader.readline()) not in (b"\r\n", b"\n"):  # trailers
                    if not t:
                        raise asyncio.IncompleteReadError(b"", None)
                return b"".join(chunks)
            chunks.append(await reader.readexactly(size))
            if await reader.readexactly(2) != b"\r\n":
                raise ValueError("chunk not followed by CRLF")
