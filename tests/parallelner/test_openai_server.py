"""The default loopback server answers entity read-backs truthfully: what a
pseudo-translation it handed out says, sentence and mentions, so a clean run is accepted."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

import httpx
import pytest

from parallelner.llm.client import LLMClient
from parallelner.readers.base import read_instances
from parallelner.reasons import Reason, Status
from parallelner.settings import Settings
from parallelner.stages import synthesize_instances
from parallelner.testing.openai_server import OpenAIServer, pseudo_translate

REPO = Path(__file__).resolve().parents[2]
WIKINEURAL = REPO / "data" / "sources" / "wikineural-en-val.conllu"

SENTENCES = [
    # (source sentence, entity mentions, target language)
    ("Kori Schulman wrote in a blog post on Monday .", ["Kori Schulman"], "zh"),
    ("The European Parliament met in Strasbourg .", ["European Parliament", "Strasbourg"], "zh"),
    ("Praetorius died in Laudenbach .", ["Praetorius", "Laudenbach"], "de"),
    ("彭小军认为，国内银行现在走的是台湾的发卡模式。", ["彭小军", "台湾"], "en"),
]


def _ask(srv: OpenAIServer, schema: str, payload: dict, fault: str | None = None) -> dict:
    body = {
        "model": "test-model",
        "messages": [{"role": "user", "content": json.dumps(payload, ensure_ascii=False)}],
        "response_format": {"type": "json_schema", "json_schema": {"name": schema}},
    }
    if fault:
        srv.script(payload["sentence"], [fault])
    r = httpx.post(f"{srv.base_url}/chat/completions", json=body, timeout=10)
    return json.loads(r.json()["choices"][0]["message"]["content"])


def _forward(srv: OpenAIServer, src: str, mentions: list[str], tgt: str) -> dict:
    payload = {
        "source_language": "zh" if tgt == "en" else "en",
        "target_language": tgt,
        "sentence": src,
        "entities": [{"id": i, "text": m, "type": "X"} for i, m in enumerate(mentions)],
    }
    return _ask(srv, "TranslationReply", payload)


def _back(srv: OpenAIServer, text: str, mentions: list[str], lang: str, **kw) -> dict:
    payload = {
        "source_language": "xx",
        "target_language": lang,
        "sentence": text,
        "mentions": [{"id": i, "text": m} for i, m in enumerate(mentions)],
    }
    return _ask(srv, "EntityBackTranslationReply", payload, **kw)


@pytest.mark.parametrize("src,mentions,tgt", SENTENCES)
def test_back_translation_of_a_text_it_handed_out_says_the_source(src, mentions, tgt):
    src_lang = "zh" if tgt == "en" else "en"
    with OpenAIServer() as srv:
        fwd = _forward(srv, src, mentions, tgt)
        targets = [e["target"] for e in fwd["entities"]]
        assert fwd["translation"] == pseudo_translate(src, tgt)  # forward unchanged
        back = _back(srv, fwd["translation"], targets, src_lang)
    assert back["translation"] == src
    assert [m["translation"] for m in back["mentions"]] == mentions


def test_other_spans_read_as_the_source_words_they_stand_for():
    src = "The European Parliament met in Strasbourg ."
    with OpenAIServer() as srv:
        text = _forward(srv, src, ["European Parliament"], "zh")["translation"]
        cut = pseudo_translate("European Parlia", "zh")  # a mention cut short
        run_on = pseudo_translate("Strasbourg .", "zh")  # one run on into the full stop
        back = _back(srv, text, [cut, run_on, "不在"], "en")
    assert [m["translation"] for m in back["mentions"]] == [
        "European Parlia",
        "Strasbourg .",
        "不在",  # words the text does not hold read as themselves
    ]


def test_texts_it_never_handed_out_are_answered_as_before():
    text = "這是一個從未翻譯過的句子"
    with OpenAIServer() as srv:
        back = _back(srv, text, ["句子"], "en")
    assert back == {"translation": pseudo_translate(text, "en")}


@pytest.mark.parametrize(
    "fault,check",
    [
        ("missing_ids", lambda r: [m["id"] for m in r["mentions"]] == [0]),
        ("wrong_language", lambda r: r["translation"] == pseudo_translate(SENTENCES[1][0], "zh")),
        ("empty", lambda r: r["translation"] == ""),
    ],
)
def test_faults_still_reach_back_translations(fault, check):
    src, mentions, tgt = SENTENCES[1]
    with OpenAIServer() as srv:
        fwd = _forward(srv, src, mentions, tgt)
        back = _back(
            srv, fwd["translation"], [e["target"] for e in fwd["entities"]], "en", fault=fault
        )
    assert check(back)


def test_a_clean_run_against_the_default_server_is_accepted(tmp_path):
    """Read-backs answered: rows are accepted, only the audit sample goes to review."""
    instances = list(read_instances(WIKINEURAL))[:60]
    with OpenAIServer() as srv:
        settings = Settings(home=tmp_path, llm_base_url=srv.base_url, llm_model="test-model")

        async def go():
            async with LLMClient.from_settings(settings, cache=False) as client:
                return await synthesize_instances(
                    client, instances, "zh", "t", "t0000000", settings
                )

        recs = asyncio.run(go())
        asked = len(srv.requests)
    status = Counter(r.status for r in recs)
    assert status[Status.ACCEPTED] >= 0.9 * len(recs), Counter(x for r in recs for x in r.reasons)
    assert all(r.reasons == (Reason.AUDIT_SAMPLE,) for r in recs if r.status != Status.ACCEPTED)
    assert asked == 2 * len(instances)  # one translation, one read-back: nothing re-asked
