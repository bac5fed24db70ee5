"""Bad configuration stops `parallelner run` with one clear line, before any work."""

from __future__ import annotations

import socket

import pytest

from tests.flows.helpers import WIKINEURAL_SAMPLE, run_cli, run_env


def _closed_port() -> int:
    with socket.socket() as s:  # bound then released: nothing listens there
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    ("case", "args", "message"),
    [
        (
            "unknown language",
            [str(WIKINEURAL_SAMPLE), "--to", "klingon"],
            "unknown language 'klingon'",
        ),
        (
            "unknown source language",
            [str(WIKINEURAL_SAMPLE), "--to", "zh", "--from", "xx"],
            "unknown language 'xx'",
        ),
        (
            "missing source file",
            ["data/sources/no-such-file.conllu", "--to", "zh"],
            "source file not found: data/sources/no-such-file.conllu",
        ),
        (
            "source is a directory",
            ["tests/data", "--to", "zh"],
            "source is a directory, not a file: tests/data",
        ),
        (
            "source is the target language",
            [str(WIKINEURAL_SAMPLE), "--to", "en"],
            "is in 'en', the target language: nothing to translate",
        ),
        (
            "unreachable LLM URL",
            [
                str(WIKINEURAL_SAMPLE),
                "--to",
                "zh",
                "--llm-base-url",
                "http://127.0.0.1:{closed}/v1",
            ],
            "cannot reach the LLM endpoint",
        ),
        (
            "invalid model name",
            [str(WIKINEURAL_SAMPLE), "--to", "zh", "--llm-model", "no-such-model"],
            "model 'no-such-model' is not served here; available: test-model",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) and " " in v else "",
)
def test_bad_configuration_fails_fast_with_one_line(case, args, message, llm_server, tmp_path):
    home = tmp_path / "home"
    args = [a.replace("{closed}", str(_closed_port())) for a in args]
    res = run_cli(*args, env=run_env(home, llm_server), timeout=300)

    assert res.returncode == 2, f"{case}: {res.stdout[-2000:]}{res.stderr[-2000:]}"
    assert "Traceback" not in res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, f"{case}: expected one line, got {lines}"
    assert lines[0].startswith("error: ")
    assert message in lines[0]
    assert res.stdout == ""
    # before any work: no LLM request, no shard written, nothing committed
    assert llm_server.requests == []
    assert not (home / "rows").exists()
    assert not (home / "catalog.db").exists()
    if case != "source is the target language":  # detected while reading, still pre-LLM
        assert not (home / "shards").exists()
