"""The structured request of each prompt family, typed.

A stage puts one of these on its ``Question`` (``question.data``); chat backends send
it as the prompt's JSON payload (``payload``), and the embedded local model's few-shot
backend reads its fields (``req.sentence``), so a renamed field is a type error, not a
silently broken local model.

==========================  ===================================  ====================
request                     prompt families                      read by
==========================  ===================================  ====================
``TranslateRequest``        ``translate``, ``translate-retry``   chat payload, few-shot
``BackTranslateRequest``    ``backtranslate``,                   chat payload, few-shot
                            ``backtranslate-entities``
``MentionTranslateRequest`` ``mention-translate``                few-shot
``RelocateRequest``         ``repair-evidence``                  chat payload
==========================  ===================================  ====================
"""

from __future__ import annotations

import json
from typing import TypeVar

from pydantic import BaseModel, ConfigDict

__all__ = [
    "EntityRef",
    "MentionRef",
    "Doubt",
    "TranslateRequest",
    "BackTranslateRequest",
    "MentionTranslateRequest",
    "RelocateRequest",
    "payload",
    "request_of",
]


class _Request(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class EntityRef(_Request):
    """A source entity in a translation request (``id``: its position)."""

    id: int
    text: str
    type: str


class MentionRef(_Request):
    """A target mention to read back (``id``: its position in the request)."""

    id: int
    text: str


class Doubt(_Request):
    """One doubtful mention and what the verifier found (the evidence re-ask)."""

    id: int
    source_mention: str
    given: str
    reads_back_as: str | None = None
    problem: str


class TranslateRequest(_Request):
    """Translate ``sentence`` and its ``entities``; with ``attempt`` 2 and up, afresh after
    ``rejected_translation`` was judged wrong for ``problems``."""

    source_language: str
    target_language: str
    sentence: str
    entities: list[EntityRef]
    attempt: int | None = None
    rejected_translation: str | None = None
    problems: list[str] | None = None


class BackTranslateRequest(_Request):
    """Translate ``sentence`` back; read back each of ``mentions`` when given."""

    source_language: str
    target_language: str
    sentence: str
    mentions: list[MentionRef] | None = None


class MentionTranslateRequest(_Request):
    """Translate each mention in the context of its sentence (``tgt_text``: the
    translation, when one exists, picks the example's script)."""

    source_language: str
    target_language: str
    mentions: list[str]
    tgt_text: str = ""


class RelocateRequest(_Request):
    """Which words of ``translation`` say each doubtful source mention."""

    source_language: str
    target_language: str
    source_sentence: str
    translation: str
    doubts: list[Doubt]


def payload(request: BaseModel) -> str:
    """The request as the prompt's JSON payload (fields in order, unset ones left out)."""
    return json.dumps(request.model_dump(mode="json", exclude_none=True), ensure_ascii=False)


R = TypeVar("R", bound=BaseModel)


def request_of(data: object, kind: type[R]) -> R:
    """``data`` as a ``kind`` request (a TypeError when a stage put another one there)."""
    if not isinstance(data, kind):
        raise TypeError(f"expected a {kind.__name__}, got {type(data).__name__}")
    return data
