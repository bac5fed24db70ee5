"""The repair ladder end to end against the test OpenAI server (scripted replies).

Each rung is shown to fire when the one before it fails. The sentence is real (PUD
en->zh, line 1); the mention the "translator" gave for Kori Schulman (柯里·舒曼,
a different transliteration) is not in the human translation (科瑞·舒爾曼)
and too far for fuzzy matching, so the cascade leaves it to the ladder.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from parallelner.align import project_spans
from parallelner.llm.client import LLMClient
from parallelner.reasons import Reason
from parallelner.records import Instance
from parallelner.stages.repair import repair_projection
from parallelner.testing.openai_server import OpenAIServer
from parallelner_cli import main

DEV = Path(__file__).resolve().parents[2] / "data" / "projection-dev"
with open(DEV / "pud-en-zh.jsonl", encoding="utf-8") as _fh:
    TASK = json.loads(_fh.readline())
SOURCE = Instance(**TASK["source"])
TARGET = TASK["target"]["text"]  # "...奧巴馬的特別助理科瑞·舒爾曼在周一發布的博客中寫道。"
MENTIONS = {0: "美國", 1: "奧巴馬", 2: "柯里·舒曼"}
ASK_A = "Mention: Kori Schulman"  # the user message of rung (a) for entity 2
ASK_B = "must appear verbatim"  # the user message of rung (b)
FALLBACK = "big-fallback-model"


def reply(obj: dict) -> dict:
    return {"content": json.dumps(obj, ensure_ascii=False)}


@pytest.fixture()
def server():
    with OpenAIServer(model="test-model") as srv:
        yield srv


def ladder(server: OpenAIServer, *, allow_rewrite: bool = True, fallback: str | None = FALLBACK):
    async def go():
        async with LLMClient(
            base_url=server.base_url, model="test-model", max_retries=0, cache_path=None
        ) as client:
            proj = project_spans(SOURCE, TARGET, "zh", MENTIONS)
            assert [(u.source_index, u.reason) for u in proj.unprojected] == [(2, Reason.NOT_FOUND)]
            return await repair_projection(
                client, SOURCE, TARGET, "zh", MENTIONS, proj,
                fallback_model=fallback, allow_rewrite=allow_rewrite,
            )  # fmt: skip

    return asyncio.run(go())


def placed(rep):
    return {e.source_index: (e.text, e.method) for e in rep.projection.entities}


def test_rung_a_mention_as_written_in_the_translation(server):
    server.script(ASK_A, [reply({"mention": "科瑞·舒爾曼"})])
    rep = ladder(server)
    assert rep.steps == ("a:mention:ok",)
    assert placed(rep)[2] == ("科瑞·舒爾曼", "repair_mention")
    assert not rep.needs_review and not rep.rewritten and rep.tgt_text == TARGET
    assert len(server.requests) == 1


def test_rung_a_answer_that_is_not_a_substring_is_refused_and_b_rewrites(server):
    rewritten = TARGET.replace("科瑞·舒爾曼", "柯里·舒曼")
    server.script(ASK_A, [reply({"mention": "舒爾曼先生"})])  # not in the translation
    server.script(ASK_B, [reply({"translation": rewritten})])
    rep = ladder(server)
    assert rep.steps == ("a:mention:failed", "b:rewrite:ok")
    assert rep.rewritten and rep.tgt_text == rewritten
    assert placed(rep)[2] == ("柯里·舒曼", "repair_rewrite")
    assert placed(rep)[1] == ("奧巴馬", "exact")  # re-projected on the new text
    for e in rep.projection.entities:
        assert rewritten[e.start : e.end] == e.text


def test_rung_c_fallback_model_after_a_and_b_fail(server):
    server.script(ASK_A, [reply({"mention": "舒爾曼先生"}), reply({"mention": "科瑞·舒爾曼"})])
    server.script(ASK_B, [reply({"translation": TARGET})])  # unchanged: no help
    rep = ladder(server)
    assert rep.steps == ("a:mention:failed", "b:rewrite:failed", "c:fallback:ok")
    assert placed(rep)[2] == ("科瑞·舒爾曼", "repair_fallback")
    asked = [r["body"]["model"] for r in server.requests_for(ASK_A)]
    assert asked == ["test-model", FALLBACK]


def test_rung_d_routes_to_review_when_everything_fails(server):
    wrong = reply({"mention": "舒爾曼先生"})
    server.script(ASK_A, [wrong, wrong])
    server.script(ASK_B, [reply({"translation": TARGET}), reply({"translation": TARGET})])
    rep = ladder(server)
    assert rep.steps == ("a:mention:failed", "b:rewrite:failed", "c:fallback:failed", "d:review")
    assert rep.needs_review
    assert [(u.source_index, u.reason) for u in rep.projection.unprojected] == [
        (2, Reason.REPAIR_EXHAUSTED)
    ]
    models = [r["body"]["model"] for r in server.requests]
    assert models == ["test-model", "test-model", FALLBACK, FALLBACK]


def test_llm_errors_fail_the_rung_without_crashing(server):
    server.script(ASK_A, ["500", "malformed_json", "malformed_json"])
    server.script(ASK_B, ["500"])
    rep = ladder(server, fallback=None)
    assert rep.steps == ("a:mention:failed", "b:rewrite:failed", "c:fallback:skipped", "d:review")
    assert rep.needs_review


def test_human_translations_are_never_rewritten(server):
    server.script(ASK_A, [reply({"mention": "舒爾曼先生"}), reply({"mention": "科瑞·舒爾曼"})])
    rep = ladder(server, allow_rewrite=False)
    assert rep.steps == ("a:mention:failed", "b:rewrite:skipped", "c:fallback:ok")
    assert server.requests_for(ASK_B) == []
    assert rep.tgt_text == TARGET


def test_cli_project_with_llm_translates_mentions_and_repairs(
    server, tmp_path, monkeypatch, capsys
):
    server.script(
        "Mentions: ",
        [reply({"mentions": [{"id": i, "target": m} for i, m in MENTIONS.items()]})],
    )
    server.script(ASK_A, [reply({"mention": "舒爾曼先生"}), reply({"mention": "科瑞·舒爾曼"})])
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps(TASK, ensure_ascii=False) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    monkeypatch.setenv("PARALLELNER_LLM_FALLBACK_MODEL", FALLBACK)
    monkeypatch.setenv("PARALLELNER_TRANSLATE__MAX_RETRIES", "0")
    monkeypatch.setattr(sys, "argv", [
        "parallelner", "project", str(src), "-o", str(out), "--json",
        "--llm-base-url", server.base_url, "--llm-model", "test-model", "--home", str(tmp_path),
    ])  # fmt: skip
    try:
        main()
    except SystemExit as exc:
        assert not exc.code
    summary = json.loads(capsys.readouterr().out)
    row = json.loads(out.read_text(encoding="utf-8"))
    assert row["repair_steps"] == ["a:mention:failed", "b:rewrite:skipped", "c:fallback:ok"]
    assert row["mentions"] == {str(i): m for i, m in MENTIONS.items()}
    assert row["target"]["text"] == TARGET and "original_text" not in row["target"]
    got = {e["source_index"]: (e["text"], e["method"]) for e in row["target"]["entities"]}
    assert got == {
        0: ("美國", "exact"),
        1: ("奧巴馬", "exact"),
        2: ("科瑞·舒爾曼", "repair_fallback"),
    }
    assert row["unprojected"] == [] and row["needs_review"] is False
    assert summary["methods"] == {"exact": 2, "repair_fallback": 1}
    assert server.requests_for(ASK_B) == []
