"""A `parallelner run` killed with SIGKILL resumes: same table, no lost or repeated work."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq

from parallelner.settings import load_settings
from parallelner.store import load_snapshot
from parallelner.testing.openai_server import OpenAIServer
from tests.flows.helpers import (
    CLI,
    REPO,
    WIKINEURAL,
    WIKINEURAL_SAMPLE,
    comparable,
    run_cli,
    run_env,
    summary_of,
)

SERVICE_S = 0.25  # per request: 46 sentences x ~2 requests / 4 in flight ~ 6 s of LLM work
ARGS = [
    str(WIKINEURAL),
    "--to",
    "zh",
    "--shard-size",
    "4",
    "--workers",
    "2",
    "--max-in-flight",
    "4",
    "--json",
]


def _body_key(request: dict) -> str:
    return json.dumps(request["body"], sort_keys=True, ensure_ascii=False)


def _rows_files(home: Path) -> list[Path]:
    return sorted((home / "rows").glob("*/*.parquet"))


def _kill_after_first_shard(env: dict[str, str], home: Path, deadline_s: float = 300) -> float:
    """Start a run, SIGKILL its whole process group once a shard's rows are on disk."""
    proc = subprocess.Popen(
        [CLI, "run", *ARGS],
        env=env,
        cwd=REPO,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        end = time.monotonic() + deadline_s
        while not _rows_files(home):
            if proc.poll() is not None:
                raise AssertionError(f"run ended before the kill: {proc.stderr.read()[-3000:]}")
            if time.monotonic() > end:
                raise AssertionError("no shard finished in time")
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        killed_at = time.time()
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return killed_at


def test_killed_run_resumes_to_the_uninterrupted_table(tmp_path):
    with OpenAIServer(model="test-model", service_time=SERVICE_S) as srv:
        # the reference: one uninterrupted run in its own home
        ref_home = tmp_path / "ref" / "home"
        ref = summary_of(run_cli(*ARGS, env=run_env(ref_home, srv)))
        ref_requests = len(srv.requests)
        srv.reset_log()

        # the same run, killed after its first shard, then run again to completion
        home = tmp_path / "killed" / "home"
        env = run_env(home, srv)
        killed_at = _kill_after_first_shard(env, home)
        first = list(srv.requests)
        done_before_kill = len(_rows_files(home))
        n_shards = ref["instances"] // 4 + (ref["instances"] % 4 > 0)
        assert 1 <= done_before_kill < n_shards, "the kill must land mid-run"
        srv.reset_log()
        resumed = summary_of(run_cli(*ARGS, env=env))
        second = list(srv.requests)

    # the table equals the uninterrupted run's: same ids, same contents
    assert resumed["run_id"] == ref["run_id"]
    assert resumed["counts"] == ref["counts"] and resumed["reasons"] == ref["reasons"]
    rows = load_snapshot("main", settings=load_settings(home=home))
    ref_rows = load_snapshot("main", settings=load_settings(home=ref_home))
    ids = rows.column("record_id").to_pylist()
    assert len(ids) == len(set(ids)) == ref["instances"] == 46  # no duplicates, none missing
    assert comparable(rows) == comparable(ref_rows)
    assert len(_rows_files(home)) == n_shards

    # no work answered before the kill was asked again: a repeated request was in
    # flight at the kill (at most the in-flight bound of them, sent within one service
    # time before it)
    answered = Counter(_body_key(r) for r in first)
    repeated = [r for r in second if _body_key(r) in answered]
    assert len(repeated) <= 4, f"{len(repeated)} requests repeated"
    sent_at = {_body_key(r): r["time"] for r in first}
    for r in repeated:
        assert killed_at - sent_at[_body_key(r)] < SERVICE_S + 1.0
    assert max(Counter(_body_key(r) for r in first + second).values()) <= 2
    # and together the two halves did the uninterrupted run's work, plus what was lost
    assert len(first) + len(second) - len(repeated) == ref_requests


def test_rerun_of_a_finished_run_asks_the_llm_nothing(llm_server, tmp_path):
    home = tmp_path / "home"
    env = run_env(home, llm_server)
    out1, out2 = tmp_path / "out1", tmp_path / "out2"
    first = summary_of(run_cli(*ARGS, "--output", str(out1), env=env))
    assert len(llm_server.requests) >= first["instances"]  # translate (+ back-translate)
    llm_server.reset_log()

    second = summary_of(run_cli(*ARGS, "--output", str(out2), env=env))

    assert llm_server.requests == []
    assert second["run_id"] == first["run_id"]
    assert second["snapshot_id"] == first["snapshot_id"]  # committed once, not twice
    a = pq.read_table(out1 / f"{first['run_id']}.parquet")
    b = pq.read_table(out2 / f"{second['run_id']}.parquet")
    assert a.num_rows == b.num_rows == 46
    assert comparable(a) == comparable(b)


def test_a_rerun_over_damaged_rows_and_cache_redoes_them_with_one_warning_each(
    llm_server, tmp_path
):
    """Issue 25 case 10 through the CLI: the Prefect result of a finished shard points at
    its rows file; a rows file deleted or cut short, and a reply cache of random bytes,
    were a traceback on every re-run. Each damaged file is set aside with one warning
    line naming it, its shards are processed again, and the run commits every row."""
    home = tmp_path / "home"
    env = run_env(home, llm_server)
    args = [str(WIKINEURAL_SAMPLE), "--to", "zh", "--shard-size", "4", "--json"]
    first = summary_of(run_cli(*args, env=env))
    rows = _rows_files(home)
    rows[0].unlink()
    rows[1].write_bytes(rows[1].read_bytes()[:100])
    for side in home.glob("llm-cache.sqlite-*"):
        side.unlink()
    (home / "llm-cache.sqlite").write_bytes(os.urandom(8192))
    llm_server.reset_log()

    res = run_cli(*args, env=env)

    second = summary_of(res)
    assert "Traceback" not in res.stderr
    err = " ".join(res.stderr.split())
    for damaged in (rows[1], home / "llm-cache.sqlite"):
        assert err.count(f"{damaged}: ") == 1 and f"set aside as {damaged.name}.damaged-" in err
    assert len(list(home.glob("llm-cache.sqlite.damaged-*"))) == 1
    assert second["shards"]["processed"] == 2 and second["counts"] == first["counts"]
    assert len(llm_server.requests) > 0  # the cache started empty: the 2 shards asked again
    assert load_snapshot("main", settings=load_settings(home=home)).num_rows == 20
