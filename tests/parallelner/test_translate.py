"""Stage 1 against a real OpenAI-compatible HTTP server on loopback, faults injected.

Sentences are real: English from the PUD sample (data/projection-dev), Chinese from the
CLUENER sample (examples/). Each fault test shows the instance's final state and reason.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from parallelner.jobs.translate import result_to_json, results_from_batch, write_translate_batch
from parallelner.languages import looks_like
from parallelner.llm.batch import read_batch_results
from parallelner.llm.client import LLMClient
from parallelner.readers import read_instances
from parallelner.reasons import Reason
from parallelner.records import Instance
from parallelner.settings import Settings
from parallelner.stages.backtranslate import back_translate
from parallelner.stages.translate import (
    Translation,
    TranslationFailure,
    translate_instance,
    translate_stream,
)
from parallelner.testing.openai_server import OpenAIServer

REPO = Path(__file__).resolve().parents[2]


def _en_instances() -> list[Instance]:
    path = REPO / "data" / "projection-dev" / "pud-en-zh.jsonl"
    with path.open(encoding="utf-8") as fh:
        return [Instance.model_validate(json.loads(line)["source"]) for line in fh]


EN = _en_instances()
ZH = list(read_instances(REPO / "examples" / "cluener-zh-sample.jsonl"))
EN_WITH_ENTITIES = [i for i in EN if len(i.entities) >= 2]


@pytest.fixture(scope="module")
def server():
    with OpenAIServer(hang_s=5.0) as srv:
        yield srv


@pytest.fixture
def srv(server):
    server.reset_log()
    server._scripts.clear()
    return server


def _settings(srv: OpenAIServer, home: Path, **kw) -> Settings:
    translate = {"timeout_s": 1.0, "max_retries": 3, "max_reasks": 2, **kw.pop("translate", {})}
    return Settings(
        llm_base_url=srv.base_url, llm_model="test-model", home=home, translate=translate, **kw
    )


async def _translate_one(settings: Settings, inst: Instance):
    async with LLMClient.from_settings(settings) as client:
        return await translate_instance(client, inst, "zh", settings), client.usage


def test_translates_both_directions_with_mentions(srv, tmp_path):
    settings = _settings(srv, tmp_path)
    pairs = [(EN_WITH_ENTITIES[0], "zh"), (ZH[2], "en")]

    async def go():
        async with LLMClient.from_settings(settings) as client:
            return [await translate_instance(client, i, tgt, settings) for i, tgt in pairs]

    results = asyncio.run(go())
    for (inst, tgt), res in zip(pairs, results, strict=True):
        assert isinstance(res, Translation), res
        assert res.instance_id == inst.id and res.tgt_lang == tgt
        assert looks_like(res.text, tgt)
        assert [m.id for m in res.mentions] == list(range(len(inst.entities)))
        assert [m.source for m in res.mentions] == [e.text for e in inst.entities]
        assert res.prompt_version == "translate.v1" and res.model == "test-model"
    # the request carried ids, types and the target language, and asked for a JSON schema
    body = srv.requests[0]["body"]
    payload = json.loads(body["messages"][-1]["content"])
    assert payload["entities"][1] == {
        "id": 1,
        "text": pairs[0][0].entities[1].text,
        "type": pairs[0][0].entities[1].label,
    }
    assert payload["target_language"] == "zh"
    assert body["response_format"]["type"] == "json_schema"


# fault -> number of requests the server sees before the instance is translated
RECOVERABLE = [
    ({"fault": "429", "retry_after": 0.3}, 2),
    ("500", 2),
    ("hang", 2),
    ("reset", 2),
    ("malformed_json", 2),
    ("missing_ids", 2),
    ("wrong_language", 2),
    ("truncated", 2),
    ("empty", 2),
]


@pytest.mark.parametrize("fault,n_requests", RECOVERABLE, ids=lambda x: str(x)[:20])
def test_fault_once_then_translated(srv, tmp_path, fault, n_requests):
    inst = EN_WITH_ENTITIES[1]
    srv.script(inst.text, [fault])
    res, usage = asyncio.run(_translate_one(_settings(srv, tmp_path), inst))
    assert isinstance(res, Translation), res
    assert len(res.mentions) == len(inst.entities)
    assert len(srv.requests_for(inst.text)) == n_requests
    name = fault if isinstance(fault, str) else fault["fault"]
    if name in ("429", "500", "hang", "reset"):
        assert usage.retries == 1 and usage.reasks == 0
    else:
        assert usage.reasks == 1 and usage.retries == 0


def test_retry_after_is_honoured(srv, tmp_path):
    inst = EN_WITH_ENTITIES[2]
    srv.script(inst.text, [{"fault": "429", "retry_after": 0.6}])
    res, _ = asyncio.run(_translate_one(_settings(srv, tmp_path), inst))
    assert isinstance(res, Translation)
    first, second = srv.requests_for(inst.text)
    assert second["time"] - first["time"] >= 0.55


# a fault that persists -> final state failed with this reason
PERSISTENT = [
    ("malformed_json", Reason.REPLY_INVALID_JSON),
    ("missing_ids", Reason.REPLY_MISSING_ENTITIES),
    ("wrong_language", Reason.REPLY_WRONG_LANGUAGE),
    ("truncated", Reason.REPLY_TRUNCATED),
    ("empty", Reason.REPLY_EMPTY),
    ("500", Reason.LLM_HTTP_ERROR),
    ({"fault": "429", "retry_after": 0}, Reason.LLM_HTTP_ERROR),
    ("reset", Reason.LLM_UNREACHABLE),
    ("hang", Reason.LLM_UNREACHABLE),
]


@pytest.mark.parametrize("fault,reason", PERSISTENT, ids=lambda x: str(x)[:20])
def test_persistent_fault_ends_failed_with_reason(srv, tmp_path, fault, reason):
    inst = EN_WITH_ENTITIES[3]
    srv.script(inst.text, [fault] * 10)
    settings = _settings(srv, tmp_path, translate={"timeout_s": 0.5, "max_retries": 2})
    res, usage = asyncio.run(_translate_one(settings, inst))
    assert isinstance(res, TranslationFailure)
    assert res.reason == reason
    assert res.instance_id == inst.id and res.model == "test-model"
    n = len(srv.requests_for(inst.text))
    if reason in (Reason.LLM_HTTP_ERROR, Reason.LLM_UNREACHABLE):
        assert n == 3 and usage.retries == 2 and usage.failures == 1  # 1 + max_retries
    else:
        assert n == 3 and usage.reasks == 2  # 1 + max_reasks
        assert res.raw_reply is not None  # the last raw reply is kept
        if fault == "malformed_json":
            assert res.raw_reply.startswith("Sure! Here is the translation")


def test_fallback_model_gets_the_failed_instance(srv, tmp_path):
    inst = EN_WITH_ENTITIES[4]
    srv.script(inst.text, ["malformed_json"] * 3)  # first model: 1 ask + 2 re-asks
    settings = _settings(srv, tmp_path, llm_fallback_model="big-model")
    res, _ = asyncio.run(_translate_one(settings, inst))
    assert isinstance(res, Translation)
    assert res.model == "big-model" and res.reasons == (Reason.ESCALATED,)
    models = [r["body"]["model"] for r in srv.requests_for(inst.text)]
    assert models == ["test-model"] * 3 + ["big-model"]


def test_every_instance_ends_in_exactly_one_state(srv, tmp_path):
    instances = EN[:20]
    faults = ["malformed_json", "500", "reset", "missing_ids", "truncated", "wrong_language"]
    plan = {}  # instance id -> (fault, times in a row)
    for n, inst in enumerate(instances[:12]):
        plan[inst.id] = (faults[n % len(faults)], 1 + n % 4)
        srv.script(inst.text, [plan[inst.id][0]] * plan[inst.id][1])
    settings = _settings(srv, tmp_path, llm_max_in_flight=4)

    async def go():
        async with LLMClient.from_settings(settings) as client:
            return [r async for r in translate_stream(client, instances, "zh", settings)]

    results = asyncio.run(go())
    assert sorted(inst.id for inst, _ in results) == sorted(i.id for i in instances)
    for inst, res in results:
        assert res.instance_id == inst.id
    # reply faults are re-asked twice (3 asks), transport faults retried 3 times (4 tries)
    reason_of = {
        "500": Reason.LLM_HTTP_ERROR,
        "reset": Reason.LLM_UNREACHABLE,
        "malformed_json": Reason.REPLY_INVALID_JSON,
        "missing_ids": Reason.REPLY_MISSING_ENTITIES,
        "truncated": Reason.REPLY_TRUNCATED,
        "wrong_language": Reason.REPLY_WRONG_LANGUAGE,
    }
    expected = {
        iid: reason_of[fault]
        for iid, (fault, times) in plan.items()
        if times >= (4 if fault in ("500", "reset") else 3)
    }
    got = {i.id: r.reason for i, r in results if isinstance(r, TranslationFailure)}
    assert got == expected and len(expected) >= 3


def test_rerun_of_finished_translation_makes_zero_requests(srv, tmp_path):
    instances = EN[:10] + ZH[:5]
    settings = _settings(srv, tmp_path)

    async def go():
        async with LLMClient.from_settings(settings) as client:
            res = {}
            for lang in ("zh", "en"):
                part = [i for i in instances if i.lang != lang]
                async for inst, r in translate_stream(client, part, lang, settings):
                    res[inst.id] = r
            bt = await back_translate(client, res[EN[0].id].text, "zh", "en", settings)
            return res, bt, client.usage

    first, bt1, u1 = asyncio.run(go())
    n_first = len(srv.requests)
    assert n_first == len(instances) + 1 == u1.requests
    # no request was sent twice
    bodies = [json.dumps(r["body"], sort_keys=True) for r in srv.requests]
    assert len(set(bodies)) == len(bodies)
    second, bt2, u2 = asyncio.run(go())
    assert len(srv.requests) == n_first  # zero new requests
    assert u2.requests == 0 and u2.cache_hits == len(instances) + 1
    assert second == first and bt2 == bt1


def test_requests_stay_in_flight_up_to_the_bound(tmp_path):
    with OpenAIServer(service_time=0.2, capacity=64) as srv:
        settings = _settings(srv, tmp_path, llm_max_in_flight=8)

        async def go():
            async with LLMClient.from_settings(settings) as client:
                return [r async for r in translate_stream(client, EN[:40], "zh", settings)]

        results = asyncio.run(go())
        assert len(results) == 40
        assert srv.stats()["max_busy"] == 8  # never more than the bound, and it is reached


def test_secret_never_leaks(srv, tmp_path, caplog):
    secret = "sk-test-7f3a9c1e55b24d0f8a6e"
    inst = EN_WITH_ENTITIES[5]
    bad = EN_WITH_ENTITIES[6]
    srv.script(inst.text, [{"fault": "429", "retry_after": 0}, "500", "malformed_json"])
    srv.script(bad.text, ["500"] * 10)
    settings = _settings(srv, tmp_path, llm_api_key=secret, translate={"max_retries": 2})
    caplog.set_level("DEBUG")

    async def go():
        async with LLMClient.from_settings(settings) as client:
            return [r async for r in translate_stream(client, [inst, bad], "zh", settings)]

    results = asyncio.run(go())
    assert {type(r).__name__ for _, r in results} == {"Translation", "TranslationFailure"}
    # the key was really sent ...
    assert srv.requests[0]["authorization"] == f"Bearer {secret}"
    # ... and is nowhere else: logs, records, error text, cache file
    assert caplog.records and secret not in caplog.text
    for i, r in results:
        assert secret not in json.dumps(result_to_json(i, r), ensure_ascii=False)
    cache_bytes = b"".join(p.read_bytes() for p in tmp_path.glob("llm-cache.sqlite*"))
    assert cache_bytes and secret.encode() not in cache_bytes
    assert secret not in repr(settings) and secret not in json.dumps(settings.masked())


def test_unreachable_server_fails_every_instance_without_the_key(tmp_path):
    from parallelner.llm.local import free_port

    secret = "sk-test-unreachable-0042"
    settings = Settings(
        llm_base_url=f"http://127.0.0.1:{free_port()}/v1",
        llm_api_key=secret,
        home=tmp_path,
        translate={"max_retries": 1, "timeout_s": 1.0},
    )

    async def go():
        async with LLMClient.from_settings(settings) as client:
            return [r async for r in translate_stream(client, EN[:3], "zh", settings)]

    results = asyncio.run(go())
    assert len(results) == 3
    for _, r in results:
        assert isinstance(r, TranslationFailure) and r.reason == Reason.LLM_UNREACHABLE
        assert secret not in r.detail


def test_batch_file_round_trip(srv, tmp_path):
    instances = EN_WITH_ENTITIES[:4]
    settings = _settings(srv, tmp_path)
    batch_in = tmp_path / "batch-in.jsonl"
    assert write_translate_batch(instances, "zh", settings, batch_in) == 4
    lines = [json.loads(x) for x in batch_in.read_text(encoding="utf-8").splitlines()]
    assert [x["custom_id"] for x in lines] == [i.id for i in instances]
    assert {x["url"] for x in lines} == {"/v1/chat/completions"}

    # the batch body is the live body: the live run sends exactly the same request
    asyncio.run(_translate_one(settings, instances[0]))
    assert srv.requests[-1]["body"] == lines[0]["body"]

    # execute the batch against the server as a batch runner would; one line errors,
    # one instance has no output line at all
    srv.script(instances[1].text, ["missing_ids"])
    out = []
    for x in lines[:3]:
        req = urllib.request.Request(
            srv.base_url + "/chat/completions",
            data=json.dumps(x["body"]).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req) as resp:
            body = json.load(resp)
        out.append({"custom_id": x["custom_id"], "response": {"status_code": 200, "body": body}})
    out[2] = {"custom_id": lines[2]["custom_id"], "response": None, "error": {"message": "boom"}}
    batch_out = tmp_path / "batch-out.jsonl"
    batch_out.write_text("\n".join(json.dumps(o) for o in out) + "\n", encoding="utf-8")

    results = list(results_from_batch(instances, read_batch_results(batch_out), "zh", settings))
    states = [(type(r).__name__, getattr(r, "reason", None)) for _, r in results]
    assert states == [
        ("Translation", None),
        ("TranslationFailure", Reason.REPLY_MISSING_ENTITIES),
        ("TranslationFailure", Reason.LLM_HTTP_ERROR),
        ("TranslationFailure", Reason.LLM_HTTP_ERROR),
    ]
    assert "boom" in results[2][1].detail and "no result" in results[3][1].detail


def _cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run(
        [sys.executable, "-c", "from parallelner_cli import main; main()", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def _translate_args(srv: OpenAIServer, tmp_path: Path) -> list[str]:
    sample = REPO / "examples" / "cluener-zh-sample.jsonl"
    return ["translate", str(sample), "-o", str(tmp_path / "zh-en.jsonl"), "--to", "en",
            "--llm-base-url", srv.base_url, "--home", str(tmp_path / "home"), "--json"]  # fmt: skip


def test_cli_translate_waits_out_a_short_outage(tmp_path):
    import threading

    # one retry is spent in well under a second; the server is down for 3 s
    env = {"PARALLELNER_TRANSLATE__MAX_RETRIES": "1", "PARALLELNER_LLM_OUTAGE_WAIT_S": "60"}
    with OpenAIServer() as srv:
        srv.set_down(True)
        up = threading.Timer(3.0, srv.set_down, args=(False,))
        up.start()
        res = _cli(*_translate_args(srv, tmp_path), cwd=tmp_path, env=env)
        up.join()
    assert res.returncode == 0, res.stderr[-2000:]
    summary = json.loads(res.stdout)
    assert summary["translated"] == 20 and summary["failed"] == 0, summary


def test_cli_translate_left_with_transient_failures_exits_3_and_a_rerun_asks_only_those(
    tmp_path,
):
    env = {"PARALLELNER_TRANSLATE__MAX_RETRIES": "1", "PARALLELNER_LLM_OUTAGE_WAIT_S": "1"}
    with OpenAIServer() as srv:
        args = _translate_args(srv, tmp_path)
        srv.script(ZH[0].text, ["500", "500"])  # one sentence: an overloaded server
        first = _cli(*args, cwd=tmp_path, env=env)
        assert first.returncode == 3, first.stderr[-2000:]
        assert "Traceback" not in first.stderr
        summary = json.loads(first.stdout)  # the summary is still printed
        assert summary["failed"] == 1 and summary["reasons"] == {"llm_http_error": 1}, summary
        last = [ln for ln in first.stderr.splitlines() if ln.strip()][-1]
        assert last.startswith("error: 1 sentences failed") and "same command again" in last
        srv.reset_log()
        second = _cli(*args, cwd=tmp_path, env=env)
        assert second.returncode == 0, second.stderr[-2000:]
        again = json.loads(second.stdout)
        assert again["translated"] == 20 and again["failed"] == 0
        # only the failed sentence was asked again: the paid replies came from the cache
        assert again["usage"]["cache_hits"] == 19 and len(srv.requests) == 1


def test_cli_translate_caps_long_sentences_by_setting(srv, tmp_path):
    res = _cli(*_translate_args(srv, tmp_path), cwd=tmp_path,
               env={"PARALLELNER_MAX_SENTENCE_CHARS": "45"})  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    summary = json.loads(res.stdout)
    longer = sum(len(i.text) > 45 for i in ZH)
    assert 0 < longer < 20
    assert summary["read"]["quarantined"] == longer
    qfile = Path(summary["read"]["quarantine_file"])
    reasons = {json.loads(x)["reason"] for x in qfile.read_text(encoding="utf-8").splitlines()}
    assert reasons == {"sentence_too_long"}


def test_cli_translates_the_sample_and_reruns_from_cache(srv, tmp_path):
    sample = REPO / "examples" / "cluener-zh-sample.jsonl"
    out = tmp_path / "zh-en.jsonl"
    args = ["translate", str(sample), "-o", str(out), "--to", "en",
            "--llm-base-url", srv.base_url, "--home", str(tmp_path / "home"), "--json"]  # fmt: skip
    first = _cli(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    rows = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert summary["translated"] == len(rows) == 20 and summary["failed"] == 0
    assert {r["id"] for r in rows} == {i.id for i in ZH}
    assert all(r["target"]["lang"] == "en" and r["status"] == "translated" for r in rows)
    n = len(srv.requests)
    second = json.loads(_cli(*args, cwd=tmp_path).stdout)
    assert second["usage"]["requests"] == 0 and second["usage"]["cache_hits"] == 20
    assert len(srv.requests) == n


def test_cli_user_mistake_is_one_line(tmp_path):
    bad = tmp_path / "settings.yaml"
    bad.write_text("translate: [1, 2\n", encoding="utf-8")
    sample = REPO / "examples" / "cluener-zh-sample.jsonl"
    res = _cli("translate", str(sample), "-o", str(tmp_path / "o.jsonl"), "--to", "en",
               "--config", str(bad), cwd=tmp_path)  # fmt: skip
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    assert f"{bad}:" in res.stderr


def test_stream_stops_asking_when_the_consumer_stops(tmp_path):
    with OpenAIServer(service_time=0.2) as srv:
        settings = _settings(srv, tmp_path, llm_max_in_flight=4)

        async def go():
            async with LLMClient.from_settings(settings) as client:
                stream = translate_stream(client, iter(EN), "zh", settings)
                got = []
                async for item in stream:
                    got.append(item)
                    if len(got) == 3:
                        break
                await stream.aclose()
                return got

        got = asyncio.run(go())
        n = len(srv.requests)
        time.sleep(0.5)
        assert len(got) == 3
        # pulled ahead: at most 2 x max_in_flight instances beyond those consumed
        assert len(srv.requests) == n <= 3 + 2 * 4 < len(EN)
