"""The reply cache key: the same bytes hashed as ever (existing caches stay valid)."""

from __future__ import annotations

import hashlib
import json

import pytest
from pydantic import BaseModel

from parallelner.llm.cache import cache_key
from parallelner.llm.outcomes import json_chat_body


class _Reply(BaseModel):
    text: str
    entities: list[dict[str, int]] = []


def _reference(request: dict, prompt_version: str) -> str:
    blob = json.dumps(
        {"request": request, "prompt_version": prompt_version},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _chat(i: int) -> dict:
    messages = [{"role": "user", "content": f'北京 \u2028 "Zürich" {i}'}]
    body = json_chat_body(messages, _Reply, model="m", max_tokens=100 + i, temperature=0.3 * i)
    return {"kind": "chat", **body}


@pytest.mark.parametrize(
    "request_body",
    [
        _chat(0),
        _chat(1),
        _chat(1),  # the schema's encoding remembered: the same key
        {"kind": "completion", "model": "m", "prompt": "x", "max_tokens": 3, "stop": ["\n"]},
        {"kind": "chat", "model": "m", "messages": [], "response_format": {"type": "json_object"}},
        {
            "kind": "chat",
            "response_format": {"type": "json_schema", "json_schema": {"name": "X", "schema": {}}},
        },
    ],
)
@pytest.mark.parametrize("prompt_version", ["translate.v1", "überarbeitet.v2"])
def test_cache_key_hashes_the_sorted_compact_json(request_body, prompt_version):
    assert cache_key(request_body, prompt_version) == _reference(request_body, prompt_version)
