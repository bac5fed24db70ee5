"""The one interface stage code uses to ask an LLM something: a ``Question``, an answer.

A stage says *what* it wants — a versioned prompt, the values to fill in, the
structured request (``data``), the reply model and a domain check — and awaits
``client.ask(question)``. The backend decides *how* to ask:

- ``ChatBackend`` (vLLM, OpenAI, any OpenAI-compatible server): the prompt file's
  ``### system`` / ``### user`` sections, ``response_format=json_schema``, the reply
  validated with pydantic and re-asked a bounded number of times;
- ``parallelner.llm.fewshot.FewShotBackend`` (the embedded local *base* model): few-shot
  completion steps that assemble the same reply model;
- ``parallelner.llm.batch`` (offline batch files): the chat request body written to a
  file, the reply judged when the batch output is read back.

The answer is a ``ChatOutcome``: the validated reply, or the reason there is none (with
the raw text), and the prompt version actually used. Per-request failures are values,
never exceptions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel

from parallelner.llm.outcomes import ChatOutcome, Check, json_chat_body
from parallelner.prompts import load_prompt

__all__ = ["LLM", "Question", "Backend", "ChatBackend", "chat_messages", "chat_body"]

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Question(Generic[M]):
    """One thing a stage asks: prompt, values, structured request and the reply it wants.

    ``prompt`` names a versioned prompt file (``translate.v1``); ``values`` fill its
    placeholders; ``data`` is the structured request (``parallelner.llm.requests``), for
    backends that do not send the chat prompt (the local few-shot backend reads
    ``req.sentence`` and the mentions there).
    """

    prompt: str
    reply_model: type[M]
    values: Mapping[str, str] = field(default_factory=dict)
    data: BaseModel | None = None
    check: Check | None = None
    max_tokens: int = 1024
    temperature: float = 0.0
    max_reasks: int = 0

    @property
    def family(self) -> str:
        """The prompt's name without its version (``translate`` for ``translate.v1``)."""
        return self.prompt.rsplit(".v", 1)[0]


class LLM(Protocol):
    """What stage code may use of an LLM client (``parallelner.llm.client.LLMClient``)."""

    model: str
    max_in_flight: int

    async def ask(self, question: Question[M], *, model: str | None = None) -> ChatOutcome[M]: ...


class Backend(Protocol):
    """How one kind of LLM endpoint answers a ``Question``."""

    async def ask(self, question: Question[M], *, model: str | None = None) -> ChatOutcome[M]: ...


def chat_messages(question: Question) -> list[dict[str, str]]:
    """The chat messages of ``question`` (its prompt file's system and user sections)."""
    return load_prompt(question.prompt).chat(**question.values)


def chat_body(question: Question, *, model: str) -> dict[str, Any]:
    """The chat-completions request body for ``question`` (what a batch file holds)."""
    return json_chat_body(
        chat_messages(question),
        question.reply_model,
        model=model,
        max_tokens=question.max_tokens,
        temperature=question.temperature,
    )


class _ChatClient(Protocol):
    """What ``ChatBackend`` needs of a client (``LLMClient.chat_json``)."""

    async def chat_json(
        self,
        messages: Sequence[dict[str, str]],
        response_model: type[M],
        *,
        model: str | None = None,
        prompt_version: str,
        max_tokens: int = 1024,
        temperature: float = 0.0,
        check: Check | None = None,
        max_reasks: int = 0,
    ) -> ChatOutcome[M]: ...


class ChatBackend:
    """An instruction-tuned chat server: one JSON request, validated and re-asked."""

    def __init__(self, client: _ChatClient):
        self.client = client

    async def ask(self, question: Question[M], *, model: str | None = None) -> ChatOutcome[M]:
        outcome = await self.client.chat_json(
            chat_messages(question),
            question.reply_model,
            model=model,
            prompt_version=question.prompt,
            max_tokens=question.max_tokens,
            temperature=question.temperature,
            check=question.check,
            max_reasks=question.max_reasks,
        )
        return dataclasses.replace(outcome, prompt_version=question.prompt)
