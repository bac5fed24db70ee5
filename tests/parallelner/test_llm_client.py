"""The LLM client on its own: generic JSON calls, completions, the reply cache, usage,
and crash-resume after SIGKILL — against the loopback OpenAI server."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict

from parallelner.llm.cache import cache_key
from parallelner.llm.client import LLMClient, RequestFailed, Usage
from parallelner.reasons import Reason
from parallelner.records import Instance
from parallelner.testing.openai_server import OpenAIServer

REPO = Path(__file__).resolve().parents[2]
PUD = REPO / "data" / "projection-dev" / "pud-en-zh.jsonl"


def _pud(n: int) -> list[Instance]:
    with PUD.open(encoding="utf-8") as fh:
        return [
            Instance.model_validate(json.loads(line)["source"])
            for line, _ in zip(fh, range(n), strict=False)
        ]


class Mention(BaseModel):
    """A reply shape someone else's prompt might ask for (e.g. the repair ladder)."""

    model_config = ConfigDict(extra="forbid")
    mention: str


@pytest.fixture(scope="module")
def server():
    with OpenAIServer() as srv:
        yield srv


def _client(srv: OpenAIServer, tmp_path: Path, **kw) -> LLMClient:
    opts = {"timeout_s": 2.0, "max_retries": 2, "cache_path": tmp_path / "cache.sqlite", **kw}
    return LLMClient(base_url=srv.base_url, model="test-model", **opts)


def test_chat_json_validates_any_model_and_reasks(server, tmp_path):
    question = "Where in 'Obama visited Paris' is the city? (case 1)"
    server.script(question, [{"content": '{"mention": 3}'}, {"content": '{"mention": "Paris"}'}])

    async def go():
        async with _client(server, tmp_path) as c:
            out = await c.chat_json(
                [{"role": "user", "content": question}],
                Mention,
                prompt_version="repair-mention.v1",
                max_reasks=1,
            )
            return out, c.usage

    out, usage = asyncio.run(go())
    assert out.ok and out.value == Mention(mention="Paris") and out.attempts == 2
    assert usage.reasks == 1 and usage.requests == 2
    reask = server.requests_for(question)[-1]["body"]["messages"]
    assert reask[1] == {"role": "assistant", "content": '{"mention": 3}'}
    assert "mention" in reask[2]["content"]  # the model is told what was wrong


def test_chat_json_check_rejects_and_keeps_raw(server, tmp_path):
    question = "Where in 'Obama visited Paris' is the city? (case 2)"
    server.script(question, [{"content": '```json\n{"mention": "London"}\n```'}] * 2)

    def check(m: Mention):
        return None if m.mention == "Paris" else (Reason.NOT_FOUND, f"{m.mention!r} is not there")

    async def go():
        async with _client(server, tmp_path) as c:
            return await c.chat_json(
                [{"role": "user", "content": question}],
                Mention,
                prompt_version="repair-mention.v1",
                check=check,
                max_reasks=1,
            )

    out = asyncio.run(go())
    assert not out.ok and out.reason == Reason.NOT_FOUND and out.value is None
    assert out.raw == '```json\n{"mention": "London"}\n```'


def test_complete_is_cached_and_counts(server, tmp_path):
    prompt = "English: Paris is in France.\nGerman:"
    server.script(prompt, [{"content": " Paris liegt in Frankreich.", "finish_reason": "stop"}])

    async def go():
        async with _client(server, tmp_path) as c:
            a = await c.complete(prompt, stop=["\n"], max_tokens=32, prompt_version="t.v1")
            b = await c.complete(prompt, stop=["\n"], max_tokens=32, prompt_version="t.v1")
            # another prompt version is another request
            await c.complete(prompt, stop=["\n"], max_tokens=32, prompt_version="t.v2")
            return a, b, c.usage

    a, b, usage = asyncio.run(go())
    assert a == b == " Paris liegt in Frankreich."
    assert usage.requests == 2 and usage.cache_hits == 1
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    body = server.requests_for(prompt)[0]["body"]
    assert body["stop"] == ["\n"] and server.requests_for(prompt)[0]["path"] == "/v1/completions"


def test_complete_raises_request_failed_after_retries(server, tmp_path):
    prompt = "English: The Eiffel Tower.\nChinese:"
    server.script(prompt, ["500"] * 3)

    async def go():
        async with _client(server, tmp_path) as c:
            with pytest.raises(RequestFailed) as err:
                await c.complete(prompt, prompt_version="t.v1")
            return err.value, c.usage

    err, usage = asyncio.run(go())
    assert err.reason == Reason.LLM_HTTP_ERROR and "HTTP 500" in str(err)
    assert usage.retries == 2 and usage.failures == 1


def test_cache_key_covers_what_decides_the_reply_only():
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.0}
    k = cache_key(body, "translate.v1")
    assert k == cache_key(dict(reversed(list(body.items()))), "translate.v1")  # order-free
    assert k != cache_key({**body, "model": "m2"}, "translate.v1")
    assert k != cache_key({**body, "temperature": 0.5}, "translate.v1")
    assert k != cache_key({**body, "response_format": {"type": "json_schema"}}, "translate.v1")
    assert k != cache_key(body, "translate.v2")


def test_cache_ignores_concurrency(server, tmp_path):
    prompt = "Chinese: 我爱北京。\nEnglish:"

    async def once(max_in_flight: int):
        async with _client(server, tmp_path, max_in_flight=max_in_flight) as c:
            await c.complete(prompt, prompt_version="t.v1")
            return c.usage

    assert asyncio.run(once(64)).requests == 1
    u = asyncio.run(once(3))
    assert u.requests == 0 and u.cache_hits == 1


def test_usage_percentiles():
    u = Usage(latencies_s=[i / 100 for i in range(1, 101)])
    d = u.as_dict()
    assert (d["latency_p50_s"], d["latency_p95_s"], d["latency_p99_s"]) == (0.5, 0.95, 0.99)
    assert Usage().as_dict()["latency_p50_s"] is None


_KILLED_RUN = """
import asyncio, json, sys
from parallelner.llm.client import LLMClient
from parallelner.records import Instance
from parallelner.settings import Settings
from parallelner.stages.translate import translate_stream

base_url, home, pud = sys.argv[1:4]
instances = [Instance.model_validate(json.loads(l)["source"]) for l in open(pud, encoding="utf-8")][:40]
settings = Settings(llm_base_url=base_url, llm_model="test-model", home=home, llm_max_in_flight=4)

async def main():
    async with LLMClient.from_settings(settings) as client:
        async for inst, res in translate_stream(client, instances, "zh", settings):
            print(inst.id, flush=True)

asyncio.run(main())
"""


def test_sigkill_loses_only_requests_in_flight(tmp_path):
    instances = _pud(40)
    home = tmp_path / "home"
    with OpenAIServer(service_time=0.1, capacity=64) as srv:
        proc = subprocess.Popen(
            [sys.executable, "-c", _KILLED_RUN, srv.base_url, str(home), str(PUD)],
            stdout=subprocess.PIPE,
            text=True,
        )
        seen = 0
        while seen < 10:  # let some replies arrive, then kill mid-run
            assert proc.stdout.readline(), "the run ended before it could be killed"
            seen += 1
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        time.sleep(0.3)  # let the server finish the requests that were in flight
        sent_before = len(srv.requests)
        with sqlite3.connect(home / "llm-cache.sqlite") as db:
            kept = db.execute("SELECT COUNT(*) FROM replies").fetchone()[0]
        assert sent_before < 40  # it really died halfway
        # every answered request is in the cache; only those in flight (<= 4) are lost
        assert sent_before - 4 <= kept <= sent_before

        from parallelner.settings import Settings
        from parallelner.stages.translate import translate_stream

        settings = Settings(llm_base_url=srv.base_url, llm_model="test-model", home=home)

        async def resume():
            async with LLMClient.from_settings(settings) as client:
                out = [r async for r in translate_stream(client, instances, "zh", settings)]
                return out, client.usage

        results, usage = asyncio.run(resume())
        assert len(results) == 40
        assert usage.cache_hits == kept and usage.requests == 40 - kept
        assert len(srv.requests) == sent_before + 40 - kept


# -- faults: outages, hung requests, per-caller counters (issue 14) ----------------------


class Reply(BaseModel):
    """What the test server answers a chat request with by default."""

    translation: str


def _ask(c: LLMClient, text: str):
    return c.chat_json([{"role": "user", "content": text}], Reply, prompt_version="t.v1")


def test_an_outage_within_the_wait_is_waited_out(tmp_path):
    import threading

    with OpenAIServer(service_time=0.01) as srv:

        async def go():
            async with _client(srv, tmp_path, max_retries=1, outage_wait_s=30.0) as c:
                assert (await _ask(c, "first")).ok
                srv.set_down(True)
                threading.Timer(2.0, srv.set_down, args=(False,)).start()
                out = await _ask(c, "second, sent while the server is down")
                return out, c.usage

        out, usage = asyncio.run(go())
    assert out.ok  # more than 1 retry's worth of down time, less than the wait
    assert usage.retries >= 2 and usage.failures == usage.transient_failures == 0


def test_a_request_that_failed_just_before_an_outage_waits_it_out_too(tmp_path):
    import threading

    # its first try fails (a 500) while another request is still answered, then the
    # server goes down: its retries fall in the outage (where the requests sent after it
    # fail too), which it waits out
    with OpenAIServer(service_time=0.3) as srv:
        srv.script("unlucky", ["500"])

        async def go():
            async with _client(srv, tmp_path, max_retries=2, outage_wait_s=30.0) as c:
                threading.Timer(0.5, srv.set_down, args=(True,)).start()
                threading.Timer(3.5, srv.set_down, args=(False,)).start()

                async def later(i: int):
                    await asyncio.sleep(0.6)
                    return await _ask(c, f"sent during the outage {i}")

                outs = await asyncio.gather(
                    _ask(c, "unlucky"), _ask(c, "answered"), *(later(i) for i in range(10))
                )
                return outs, c.usage

        outs, usage = asyncio.run(go())
    assert all(o.ok for o in outs)
    assert usage.transient_failures == 0 and usage.connect_failures >= 10


def test_an_outage_longer_than_the_wait_fails_as_transient(tmp_path):
    with OpenAIServer() as srv:

        async def go():
            async with _client(srv, tmp_path, max_retries=1, outage_wait_s=1.0) as c:
                srv.set_down(True)
                out = await _ask(c, "nobody answers")
                return out, c.usage

        out, usage = asyncio.run(go())
    assert out.reason is Reason.LLM_UNREACHABLE and "connection failed" in out.detail
    assert usage.failures == usage.transient_failures == 1


def test_a_request_that_fails_while_others_succeed_does_not_wait(tmp_path):
    # a server that answers others is no outage: the retry budget alone decides
    with OpenAIServer() as srv:
        srv.script("poison", ["500"] * 50)

        async def go():
            async with _client(srv, tmp_path, max_retries=2, outage_wait_s=600.0) as c:

                async def others():
                    for i in range(40):
                        await _ask(c, f"healthy {i}")
                        await asyncio.sleep(0.05)

                out, _ = await asyncio.gather(_ask(c, "poison"), others())
                return out, c.usage

        out, usage = asyncio.run(go())
    assert out.reason is Reason.LLM_HTTP_ERROR
    assert len(srv.requests_for("poison")) == 3  # 1 + max_retries, no outage wait
    assert usage.transient_failures == 1


def test_a_non_retryable_error_is_not_transient(tmp_path):
    with OpenAIServer() as srv:

        async def go():
            c = LLMClient(
                base_url=srv.base_url + "/nowhere",  # 404
                model="test-model",
                cache_path=tmp_path / "cache.sqlite",
            )
            async with c:
                return await _ask(c, "x"), c.usage

        out, usage = asyncio.run(go())
    assert out.reason is Reason.LLM_HTTP_ERROR and "HTTP 404" in out.detail
    assert usage.failures == 1 and usage.transient_failures == 0


@pytest.mark.parametrize("slots", [1, 4], ids=["no free slot: timeout", "free slot: hedge"])
def test_the_timeout_is_fitted_to_latency_and_a_hung_request_is_let_go(slots, tmp_path):
    with OpenAIServer(service_time=0.02, hang_s=60) as srv:
        srv.script("hangs once", ["hang"])

        async def go():
            opts = {"timeout_s": 60.0, "min_timeout_s": 0.3, "max_in_flight": slots}
            async with _client(srv, tmp_path, **opts) as c:
                assert c.request_timeout() == 60.0  # no latency seen yet: the ceiling
                for i in range(25):
                    await _ask(c, f"warm-up {i}")
                fitted = c.request_timeout()
                out = await _ask(c, "hangs once")
                return out, fitted, c.usage

        out, fitted, usage = asyncio.run(go())
    p99 = sorted(usage.latencies_s[:25])[24]
    assert fitted == max(0.3, 3 * p99) < 60.0
    assert out.ok  # the hung request was let go and the same request answered
    assert len(srv.requests_for("hangs once")) == 2 and usage.requests == 27
    if slots == 1:  # given up after `fitted` s, then sent again
        assert (usage.timeouts, usage.retries, usage.hedges) == (1, 1, 0)
    else:  # a copy sent after fitted / 2 s, while a slot was free, answered first
        assert (usage.timeouts, usage.retries, usage.hedges) == (0, 0, 1)


def test_count_usage_counts_one_callers_requests_only(server, tmp_path):
    from parallelner.llm.client import count_usage

    async def go():
        async with _client(server, tmp_path, cache_path=None) as c:
            mine, theirs = Usage(), Usage()

            async def asks(prefix: str, n: int) -> None:  # tasks started inside count_usage
                await asyncio.gather(*(_ask(c, f"{prefix} {i}") for i in range(n)))

            await asyncio.gather(
                count_usage(mine, asks("mine", 3)),
                count_usage(theirs, asks("theirs", 5)),
                _ask(c, "nobody's"),
            )
            return mine, theirs, c.usage

    mine, theirs, total = asyncio.run(go())
    assert (mine.requests, theirs.requests, total.requests) == (3, 5, 9)
    assert len(mine.latencies_s) == 3
