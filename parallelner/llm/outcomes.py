"""What an LLM request gives back: outcomes, failures, and how a JSON reply is judged.

The lowest floor of ``parallelner.llm``: plain values and pure functions that the client,
the backends (``ask``, ``fewshot``) and the batch path share, so none of them imports
another to get them. Per-request failures are values (``ChatOutcome.reason``,
``Failure``), never exceptions, except ``RequestFailed`` raised by ``complete``.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from parallelner.errors import LLMError
from parallelner.reasons import Reason

__all__ = [
    "ChatOutcome",
    "CompletionOutcome",
    "RequestFailed",
    "Reply",
    "Failure",
    "Check",
    "judge_reply",
    "json_chat_body",
]

M = TypeVar("M", bound=BaseModel)
# A domain check on a parsed reply: None when fine, else (reason, human detail).
Check = Callable[[Any], "tuple[Reason, str] | None"]


@dataclass(frozen=True)
class ChatOutcome(Generic[M]):
    """Result of ``chat_json``: the parsed reply, or why there is none (raw text kept)."""

    value: M | None
    reason: Reason | None
    detail: str
    raw: str | None
    model: str
    finish_reason: str | None = None
    cached: bool = False
    attempts: int = 1
    prompt_version: str = ""  # the prompt the backend asked with (set by ``ask``)

    @property
    def ok(self) -> bool:
        """True when ``value`` holds a validated reply."""
        return self.reason is None


@dataclass(frozen=True)
class CompletionOutcome:
    """Result of ``complete_outcome``: generated text and why generation stopped."""

    text: str
    finish_reason: str | None
    model: str
    cached: bool = False


class RequestFailed(LLMError):
    """A request got no reply after every retry (raised by ``complete`` only)."""

    def __init__(self, reason: Reason, detail: str):
        self.reason = reason
        self.detail = detail
        super().__init__(f"{detail} [{reason.value}]")


@dataclass(frozen=True, slots=True)
class Reply:
    """The text of one answered request (from the server or the reply cache)."""

    content: str
    finish_reason: str | None
    cached: bool


@dataclass(frozen=True, slots=True)
class Failure:
    """Why one request (or one try of it) got no reply."""

    reason: Reason
    detail: str
    transient: bool = True  # another try later may succeed (outage, 5xx, 429, timeout)
    connection: bool = False  # no HTTP answer at all: refused, reset (the server, not us)


_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.S)


def _strip_fence(text: str) -> str:
    m = _FENCE.match(text)
    return m.group(1) if m else text


def judge_reply(
    content: str, finish_reason: str | None, response_model: type[M], check: Check | None = None
) -> tuple[M | None, Reason | None, str]:
    """Parse and validate one reply: (value, None, "") or (None, reason, detail).

    Truncated (finish_reason ``length``), empty, not JSON, not matching the model, or
    rejected by ``check`` — in that order. Code fences around the JSON are tolerated.
    """
    if finish_reason == "length":
        return None, Reason.REPLY_TRUNCATED, "the reply was cut off (finish_reason=length)"
    text = content.strip()
    if not text:
        return None, Reason.REPLY_EMPTY, "the reply is empty"
    try:
        data = json.loads(_strip_fence(text))
    except json.JSONDecodeError as exc:
        return None, Reason.REPLY_INVALID_JSON, f"the reply is not valid JSON ({exc.msg})"
    try:
        value = response_model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "reply"
        return None, Reason.REPLY_INVALID_JSON, f"{where}: {first['msg']}"
    if check is not None:
        verdict = check(value)
        if verdict is not None:
            return None, verdict[0], verdict[1]
    return value, None, ""


@functools.cache
def _json_schema(response_model: type[BaseModel]) -> dict[str, Any]:
    # generating a schema costs ~1 ms of CPU: once per model class, not per request
    return response_model.model_json_schema()


def json_chat_body(
    messages: Sequence[dict[str, str]],
    response_model: type[BaseModel],
    *,
    model: str,
    max_tokens: int,
    temperature: float,
) -> dict[str, Any]:
    """The chat-completions request body asking for JSON that matches ``response_model``.

    The same body goes on the wire, into the cache key and into batch files.
    """
    return {
        "model": model,
        "messages": list(messages),
        "temperature": temperature,
        "max_tokens": max_tokens,
        "response_format": {
            "type": "json_schema",
            "json_schema": {
                "name": response_model.__name__,
                "schema": _json_schema(response_model),
            },
        },
    }
