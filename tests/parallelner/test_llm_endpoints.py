"""Several LLM endpoints behind one client: least-outstanding routing inside the one
in-flight bound, an endpoint taken out and brought back, per-endpoint AIMD on 429, the
endpoint check of a run, settings — against two real loopback servers."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict

from parallelner.errors import LLMError
from parallelner.llm.client import LLMClient
from parallelner.llm.endpoints import display_url, endpoint_line, split_base_urls
from parallelner.llm.runtime import check_endpoint
from parallelner.settings import load_settings
from parallelner.testing.openai_server import OpenAIServer
from tests.flows.helpers import free_port


class Mention(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mention: str


def _client(urls: list[str], tmp_path: Path | None = None, **kw) -> LLMClient:
    opts = {"timeout_s": 10.0, "max_retries": 3, **kw}
    if tmp_path is not None:
        opts["cache_path"] = tmp_path / "cache.sqlite"
    return LLMClient(base_url=",".join(urls), model="test-model", **opts)


async def _ask_many(client: LLMClient, n: int, tag: str) -> list:
    async def one(i: int):
        content = f"{tag} question {i}: where is Paris?"
        return await client.chat_json(
            [{"role": "user", "content": content}], Mention, prompt_version="t.v1"
        )

    return await asyncio.gather(*(one(i) for i in range(n)))


def _mention_responder(body, chat, text):
    return '{"mention": "Paris"}', "stop"


def _server(**kw) -> OpenAIServer:
    return OpenAIServer(model="test-model", responder=_mention_responder, **kw)


def test_requests_spread_by_outstanding_within_one_global_bound():
    with _server(service_time=0.1) as a, _server(service_time=0.1) as b:

        async def go():
            async with _client([a.base_url, b.base_url], max_in_flight=10) as c:
                outs = await _ask_many(c, 200, "spread")
                return outs, c.endpoint_stats(), c.usage

        outs, stats, usage = asyncio.run(go())
        sa, sb = a.stats(), b.stats()
    assert all(o.ok for o in outs)
    assert sa["requests"] + sb["requests"] == usage.requests == 200
    # least outstanding: equal servers get about equal shares, both kept busy
    assert 80 <= sa["requests"] <= 120 and 80 <= sb["requests"] <= 120, (sa, sb)
    # the one global bound holds across both servers
    assert sa["max_concurrent"] + sb["max_concurrent"] <= 10, (sa, sb)
    assert sa["max_concurrent"] >= 4 and sb["max_concurrent"] >= 4
    assert [s["url"] for s in stats] == [a.base_url, b.base_url]
    assert [s["requests"] for s in stats] == [sa["requests"], sb["requests"]]
    assert all(s["errors"] == 0 and s["latency_p50_s"] >= 0.1 for s in stats)


def test_a_slower_endpoint_gets_fewer_requests():
    # least outstanding, not round robin: the faster replica answers more
    with _server(service_time=0.3) as slow, _server(service_time=0.05) as fast:

        async def go():
            async with _client([slow.base_url, fast.base_url], max_in_flight=8) as c:
                return await _ask_many(c, 200, "slow-fast")

        outs = asyncio.run(go())
        n_slow, n_fast = slow.stats()["requests"], fast.stats()["requests"]
    assert all(o.ok for o in outs)
    assert n_fast > 2 * n_slow, (n_slow, n_fast)


def test_endpoint_killed_midrun_loses_nothing_and_comes_back(caplog):
    caplog.set_level(logging.INFO, logger="parallelner.llm")
    with _server(service_time=0.1) as a, _server(service_time=0.1) as b:

        def kill_and_restore() -> None:
            while len(a.requests) < 30:
                threading.Event().wait(0.005)
            a.set_down(True)
            threading.Event().wait(2.0)
            a.set_down(False)

        killer = threading.Thread(target=kill_and_restore, daemon=True)

        async def go():
            async with _client([a.base_url, b.base_url], max_in_flight=8) as c:
                killer.start()
                outs = await _ask_many(c, 300, "killed")
                return outs, c.endpoint_stats(), c.usage

        outs, stats, usage = asyncio.run(go())
        killer.join()
        answered_a = sum(r["answered"] for r in a.requests)
        answered_b = sum(r["answered"] for r in b.requests)
        late_a = [r for r in a.requests[30:] if r["answered"]]
    assert all(o.ok for o in outs), [o.detail for o in outs if not o.ok][:3]
    assert answered_a + answered_b >= 300
    assert usage.failures == 0
    sa = stats[0]
    assert sa["taken_out"] >= 1 and sa["errors"] >= 1 and stats[1]["taken_out"] == 0
    assert late_a, "the endpoint got requests again once it was back"
    text = caplog.text
    assert f"LLM endpoint {a.base_url} taken out" in text
    assert f"LLM endpoint {a.base_url} answers again" in text
    assert "taken out 1x" in endpoint_line(sa) or "taken out" in endpoint_line(sa)


def test_all_endpoints_down_the_requests_wait_then_go_on(caplog):
    caplog.set_level(logging.WARNING, logger="parallelner.llm")
    with _server() as a, _server() as b:
        a.set_down(True)
        b.set_down(True)

        def restore() -> None:
            threading.Event().wait(3.0)
            a.set_down(False)
            b.set_down(False)

        threading.Thread(target=restore, daemon=True).start()

        async def go():
            async with _client(
                [a.base_url, b.base_url], max_in_flight=4, max_retries=1, outage_wait_s=30.0
            ) as c:
                return await _ask_many(c, 12, "all-down"), c.usage

        outs, usage = asyncio.run(go())
    assert all(o.ok for o in outs)
    assert usage.failures == 0
    assert "waiting up to 30 s" in caplog.text  # the run says it waits


def test_a_rate_limited_endpoint_gets_less_traffic_the_other_keeps_its_share():
    n = 240
    with _server(service_time=0.05) as a, _server(service_time=0.05) as b:

        async def baseline():
            async with _client([a.base_url, b.base_url], max_in_flight=16) as c:
                return await _ask_many(c, n, "aimd-base")

        assert all(o.ok for o in asyncio.run(baseline()))
        base_b = b.stats()["requests"]
        a.reset_log()
        b.reset_log()
    with (
        _server(service_time=0.05, fault_mix={"429": 0.3}, seed=3) as a,
        _server(service_time=0.05) as b,
    ):

        async def go():
            async with _client([a.base_url, b.base_url], max_in_flight=16) as c:
                return await _ask_many(c, n, "aimd"), c.endpoint_stats()

        outs, stats = asyncio.run(go())
        served_a = sum(r["answered"] and r["fault"] == "ok" for r in a.requests)
        served_b = sum(r["answered"] and r["fault"] == "ok" for r in b.requests)
    assert all(o.ok for o in outs)
    assert served_a < served_b, (served_a, served_b)
    assert b.stats()["requests"] >= 0.9 * base_b  # the healthy one keeps (at least) its share
    sa, sb = stats
    assert sa["rate_limited"] > 0 and sa["min_limit"] < 16  # AIMD slowed that one
    assert sb["rate_limited"] == 0 and sb["min_limit"] is None  # ...not the other


def test_reply_cache_does_not_depend_on_the_endpoint(tmp_path):
    with _server() as a, _server() as b:

        async def both():
            async with _client([a.base_url, b.base_url], tmp_path, max_in_flight=8) as c:
                return await _ask_many(c, 20, "cache")

        async def only_b():
            async with _client([b.base_url], tmp_path) as c:
                outs = await _ask_many(c, 20, "cache")
                return outs, c.usage

        assert all(o.ok for o in asyncio.run(both()))
        assert a.stats()["requests"] > 0 and b.stats()["requests"] > 0
        b.reset_log()
        outs, usage = asyncio.run(only_b())
    assert all(o.ok and o.cached for o in outs)
    assert usage.cache_hits == 20 and usage.requests == 0 and b.requests == []


def test_endpoint_check_warns_for_an_unreachable_url_among_several():
    with _server() as a:
        dead = f"http://user:s3cret@127.0.0.1:{free_port()}/v1"
        settings = load_settings(llm_base_url=f"{a.base_url},{dead}", llm_model="test-model")
        warnings = check_endpoint(settings, timeout_s=2)
        assert len(warnings) == 1
        assert display_url(dead) in warnings[0] and "cannot reach" in warnings[0]
        assert "s3cret" not in warnings[0] and "user" not in warnings[0]
        # every one unreachable: the run does not start
        dead2 = f"http://127.0.0.1:{free_port()}/v1"
        with pytest.raises(LLMError, match="none of the 2 LLM endpoints"):
            check_endpoint(load_settings(llm_base_url=f"{dead},{dead2}"), timeout_s=2)


def test_endpoint_check_fails_when_one_of_several_serves_another_model():
    with _server() as a, OpenAIServer(model="other-model") as b:
        settings = load_settings(llm_base_url=f"{a.base_url},{b.base_url}", llm_model="test-model")
        with pytest.raises(LLMError, match="'test-model' is not served here"):
            check_endpoint(settings, timeout_s=2)


def test_several_urls_from_env_and_yaml(tmp_path, monkeypatch):
    monkeypatch.setenv("PARALLELNER_LLM_BASE_URL", "http://a:8000/v1, http://b:8000/v1")
    assert split_base_urls(load_settings().llm_base_url) == [
        "http://a:8000/v1",
        "http://b:8000/v1",
    ]
    monkeypatch.delenv("PARALLELNER_LLM_BASE_URL")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("llm_base_url:\n  - http://a:8000/v1\n  - http://b:8000/v1\n")
    assert load_settings(cfg).llm_base_url == "http://a:8000/v1,http://b:8000/v1"
    assert load_settings(llm_base_url="http://a/v1,").llm_base_url == "http://a/v1"
    cfg.write_text("llm_base_url: http://a:8000/v1,b:8000\n")
    with pytest.raises(Exception, match="must start with http"):
        load_settings(cfg)
    assert split_base_urls("http://one/v1") == ["http://one/v1"]  # one URL as before
    assert display_url("https://k:pw@host:9/v1?key=x") == "https://host:9/v1"


def test_cli_summary_table_shows_each_endpoint():
    from parallelner_cli._common import console
    from parallelner_cli.run import _print_summary

    endpoints = [
        {"url": "http://gpu1:8000/v1", "requests": 120, "answered": 110, "errors": 10,
         "rate_limited": 0, "taken_out": 1, "down_s": 31.0, "max_outstanding": 64,
         "min_limit": None, "latency_p50_s": 1.0, "latency_p95_s": 1.2},
        {"url": "http://gpu2:8000/v1", "requests": 200, "answered": 200, "errors": 4,
         "rate_limited": 4, "taken_out": 0, "down_s": 0.0, "max_outstanding": 64,
         "min_limit": 16, "latency_p50_s": 1.0, "latency_p95_s": 1.1},
    ]  # fmt: skip
    summary = {"run_id": "r", "counts": {"accepted": 3}, "reasons": {}, "read_counts": {},
               "usage": {"requests": 320, "endpoints": endpoints}, "acceptance_rate": 1.0,
               "snapshot_id": 1, "snapshot_new": True, "report_dir": "x"}  # fmt: skip
    width = console._width  # wide enough for a row on one line; restored after
    console.width = 200
    try:
        with console.capture() as cap:
            _print_summary(summary)
    finally:
        console._width = width
    text = cap.get()
    assert "llm endpoint http://gpu1:8000/v1" in text and "taken out 1x (31 s)" in text
    assert "llm endpoint http://gpu2:8000/v1" in text and "4 rate-limited" in text


def test_a_url_that_answers_html_for_models_is_one_clear_line():
    """A base URL that is a web page, not an OpenAI-compatible API (the SDK's endpoint
    check used to crash inside itself with an AttributeError)."""
    with OpenAIServer(model="test-model", models_html=True) as srv:
        settings = load_settings(llm_base_url=srv.base_url, llm_model="test-model")
        with pytest.raises(LLMError, match="did not answer JSON.*ends in /v1"):
            check_endpoint(settings, timeout_s=2)
