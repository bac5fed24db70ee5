"""Mask the secrets a URL can carry, for every message, summary and shown setting.

A leaf module (no project imports): settings, storage, the store and the clients all use
it, and each of them may be imported by the others.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

__all__ = ["redact_url"]


def redact_url(url: str, *, unparsable: str = "URL (not shown: it may hold a secret)") -> str:
    """``url`` with any ``user:password@`` part replaced by ``***@``, safe for messages.

    The one masking of URL user info (catalog, reply cache, warehouse, storage, LLM and
    Label Studio URLs): pyarrow takes ``s3://KEY:SECRET@bucket/path``, httpx
    ``http://user:pass@host``. Several comma-separated URLs are masked each. A URL that
    does not parse is replaced by ``unparsable`` whole (it may still hold a secret).
    """
    several = url.split(",")
    if len(several) > 1 and all("://" in u for u in several):  # not a comma in a password
        return ",".join(redact_url(u, unparsable=unparsable) for u in several)
    try:
        parts = urlsplit(url)
        if "@" not in parts.netloc:
            return url
        parts.port  # noqa: B018 - a malformed port raises here: show nothing of it
        host = parts.netloc.rpartition("@")[2]
    except ValueError:
        return unparsable
    return urlunsplit(parts._replace(netloc=f"***@{host}"))
