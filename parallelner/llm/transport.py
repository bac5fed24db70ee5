"""HTTP to OpenAI-compatible servers on aiohttp: JSON in, JSON out, failures classified.

The LLM client's request path (``LLMClient._send``) asks through ``HTTPClient``: one
``aiohttp.ClientSession`` per client, opened lazily in the event loop that uses it, with
keep-alive connections (pooled per host, up to ``limit``), TLS and proxies as aiohttp does
them (the proxy ``HTTP_PROXY`` / ``HTTPS_PROXY`` / ``NO_PROXY`` name; ``https://``
through a ``CONNECT`` tunnel), request bodies and replies through orjson.

What the client above relies on, and the tests check against a real loopback server:

- the proxy the environment names is resolved once per client (``env_proxy``);
- a request is never sent twice here: aiohttp re-sends only idempotent methods on a
  stale keep-alive connection, and the completions are ``POST``; a connection that fails
  after the request went out is a ``ConnectionLost`` for the caller to count and retry;
- a connection whose request was cancelled (a timeout) is closed, never reused;
- failures are this module's exceptions: ``ConnectFailed`` (nothing was sent: refused,
  unknown host, connect timeout), ``ConnectionLost`` (reset or closed after sending, or a
  reply that is not HTTP), ``StatusError`` (an HTTP answer >= 400, with its headers) and
  ``BadResponse`` (a 2xx whose body is not JSON);
- the API key is only ever written into the ``Authorization`` header, never into an
  error's text.

Cost (``benchmarks/bench_throughput.py``, docs/benchmarks-throughput.md, issue 27): the
whole pipeline spends ~0.17 ms more client CPU per request on aiohttp than on the
hand-written HTTP/1.1 client it replaced, half of it garbage collection of aiohttp's
per-request objects (see ``runtime._GC_GEN0``). What is trimmed here: each URL is parsed
once, every header is a session header (no per-request merge), no cookie jar, the
reply's headers are copied only for an error, and no timeout of its own where the
caller's deadline bounds the request.
"""

from __future__ import annotations

import asyncio
import urllib.parse
import urllib.request
from typing import Any

import aiohttp
import orjson
from yarl import URL

from parallelner.llm.endpoints import display_url

__all__ = [
    "HTTPClient",
    "HTTPError",
    "ConnectFailed",
    "ConnectionLost",
    "StatusError",
    "BadResponse",
]

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
    """The server answered with an HTTP status >= 400."""

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
        data = orjson.loads(body)
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


def env_proxy(url: str) -> str | None:
    """The proxy ``HTTP_PROXY`` / ``HTTPS_PROXY`` name for ``url``, unless ``NO_PROXY``
    exempts its host (the standard library's reading of the variables)."""
    host = urllib.parse.urlsplit(url).hostname or ""
    if urllib.request.proxy_bypass(host):
        return None
    return urllib.request.getproxies().get(urllib.parse.urlsplit(url).scheme)


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
        limit: int = 0,
    ):
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"not an http(s) URL: {parts.scheme}://...")
        # user info is never sent (the key is, in its header), nor a query or fragment
        self.base_url = display_url(base_url).rstrip("/")
        self.timeout = timeout
        # the proxy is resolved once, here: with ``trust_env`` aiohttp reads the proxy
        # variables and ~/.netrc again on every request (10% of the client's CPU at 500
        # requests/s, measured with py-spy)
        self.proxy = proxy or (env_proxy(base_url) if trust_env else None)
        self._limit = limit  # connections per client (0: as many as requests in flight)
        self._headers = {
            "User-Agent": _USER_AGENT,
            "Accept": "application/json",
            # on every request (a GET has no body to describe: servers ignore it), so
            # aiohttp merges no per-request headers
            "Content-Type": "application/json",
            **({"Authorization": f"Bearer {api_key}"} if api_key else {}),
            **(headers or {}),
        }
        self._session: aiohttp.ClientSession | None = None
        self._closed = False
        self._urls: dict[str, URL] = {}  # path -> parsed URL, built once

    # -- public --------------------------------------------------------------------------

    async def post_json(self, path: str, body: Any) -> Any:
        """POST ``body`` as JSON to ``base_url + path``; the decoded JSON reply."""
        return await self._request("POST", path, orjson.dumps(body))

    async def get_json(self, path: str) -> Any:
        """GET ``base_url + path``; the decoded JSON reply."""
        return await self._request("GET", path, None)

    async def aclose(self) -> None:
        """Close the session and its connections."""
        self._closed = True
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- internals -----------------------------------------------------------------------

    def _open(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("the HTTP client is closed")
        if self._session is None:  # in the loop that asks: a session belongs to one loop
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._limit, limit_per_host=0),
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=None),  # ours: ``timeout`` below
                auto_decompress=True,
                # an API of JSON replies sets no cookie we would send back; the jar's
                # filtering and update cost CPU on every request
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def _request(self, method: str, path: str, data: bytes | None) -> Any:
        session = self._open()
        if self.timeout is None:
            status, headers, body = await self._exchange(session, method, path, data)
        else:
            async with asyncio.timeout(self.timeout):
                status, headers, body = await self._exchange(session, method, path, data)
        if status >= 400:  # the headers as a plain dict only here (Retry-After)
            headers = {k.lower(): v for k, v in headers.items()}
            raise StatusError(status, _error_message(status, body), headers)
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise BadResponse(f"the reply is not JSON ({exc})") from None

    async def _exchange(
        self, session: aiohttp.ClientSession, method: str, path: str, data: bytes | None
    ) -> tuple[int, Any, bytes]:
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = URL(self.base_url + path)
        try:
            async with session.request(method, url, data=data, proxy=self.proxy) as resp:
                return resp.status, resp.headers, await resp.read()
        except (aiohttp.ConnectionTimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise ConnectFailed("ConnectTimeout", type(exc).__name__) from None
        except aiohttp.ClientHttpProxyError as exc:  # the proxy refused the tunnel
            raise ConnectFailed("ConnectError", f"the proxy answered {exc.status}") from None
        except aiohttp.ClientConnectorError as exc:  # refused, unknown host, proxy down
            raise ConnectFailed("ConnectError", f"{type(exc).__name__}: {exc.strerror}") from None
        except aiohttp.ServerDisconnectedError as exc:
            if isinstance(exc.message, str):  # before any byte of a reply
                raise ConnectionLost(
                    "RemoteProtocolError", "the server closed the connection"
                ) from None
            raise ConnectionLost("ReadError", "the connection closed mid-reply") from None
        except aiohttp.ClientPayloadError:
            raise ConnectionLost("ReadError", "the connection closed mid-reply") from None
        except aiohttp.ClientResponseError as exc:  # a reply the HTTP parser refused
            raise ConnectionLost(
                "RemoteProtocolError", f"not an HTTP reply ({exc.message})"
            ) from None
        except aiohttp.ClientOSError as exc:
            raise ConnectionLost("ReadError", f"{type(exc).__name__} mid-reply") from None
