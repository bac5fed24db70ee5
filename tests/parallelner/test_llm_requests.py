"""Typed requests: the wire payload stays what chat servers (and reply caches) saw."""

from __future__ import annotations

import json

import pytest

from parallelner.llm.requests import (
    BackTranslateRequest,
    EntityRef,
    MentionRef,
    TranslateRequest,
    payload,
    request_of,
)
from parallelner.records import Entity, Instance
from parallelner.settings import TranslateSettings
from parallelner.stages.translate import translate_question

INST = Instance(
    id="i", lang="en", text="Prodi met Aznar in Madrid .",
    entities=(Entity(start=0, end=5, label="PER", text="Prodi"),
              Entity(start=19, end=25, label="LOC", text="Madrid")),
)  # fmt: skip


def test_the_translate_payload_is_the_json_the_prompt_always_carried():
    q = translate_question(INST, "de", TranslateSettings())
    want = {
        "source_language": "en",
        "target_language": "de",
        "sentence": INST.text,
        "entities": [
            {"id": 0, "text": "Prodi", "type": "PER"},
            {"id": 1, "text": "Madrid", "type": "LOC"},
        ],
    }
    assert q.values["payload"] == json.dumps(want, ensure_ascii=False)
    assert isinstance(q.data, TranslateRequest) and q.data.sentence == INST.text


def test_a_fresh_translation_is_another_question_with_the_rejected_one():
    q = translate_question(
        INST, "de", TranslateSettings(), attempt=2, rejected="x", problems=("untranslated",)
    )
    sent = json.loads(q.values["payload"])
    assert q.prompt == "translate-retry.v1"
    assert (sent["attempt"], sent["rejected_translation"], sent["problems"]) == (
        2, "x", ["untranslated"],
    )  # fmt: skip


def test_back_translation_lists_mentions_only_when_asked():
    plain = BackTranslateRequest(source_language="de", target_language="en", sentence="s")
    assert "mentions" not in json.loads(payload(plain))
    asked = plain.model_copy(update={"mentions": [MentionRef(id=0, text="Prodi")]})
    assert json.loads(payload(asked))["mentions"] == [{"id": 0, "text": "Prodi"}]


def test_a_backend_that_reads_another_request_fails_loudly():
    req = TranslateRequest(
        source_language="en", target_language="de", sentence="s",
        entities=[EntityRef(id=0, text="a", type="PER")],
    )  # fmt: skip
    assert request_of(req, TranslateRequest) is req
    with pytest.raises(TypeError, match="BackTranslateRequest"):
        request_of(req, BackTranslateRequest)
