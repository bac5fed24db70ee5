"""``parallelner run --processes 2``: the shards in two worker processes give the rows,
counts and summary figures of a run on threads of one process."""

from __future__ import annotations

import pyarrow.parquet as pq

from parallelner.testing.openai_server import OpenAIServer
from tests.flows.helpers import WIKINEURAL_SAMPLE, comparable, run_cli, run_env, summary_of


def test_a_run_in_two_worker_processes_commits_the_rows_of_a_run_in_one(tmp_path):
    with OpenAIServer(model="test-model") as srv:
        runs = {}
        for n in ("0", "2"):
            home = tmp_path / f"p{n}" / "home"
            res = run_cli(
                str(WIKINEURAL_SAMPLE), "--to", "zh", "--processes", n, "--shard-size", "3",
                "--output", str(tmp_path / f"out{n}"), "--json", env=run_env(home, srv),
            )  # fmt: skip
            summary = summary_of(res)
            runs[n] = (summary, comparable(pq.read_table(summary["output_files"][0])))
    (one, rows_one), (two, rows_two) = runs["0"], runs["2"]
    assert two["counts"] == one["counts"] and sum(two["counts"].values()) == 20
    assert [r["record_id"] for r in rows_two] == [r["record_id"] for r in rows_one]
    keep = ("status", "tgt_text", "tgt_entities", "reasons")
    assert [{k: r[k] for k in keep} for r in rows_two] == [
        {k: r[k] for k in keep} for r in rows_one
    ]
    assert two["usage"]["requests"] == one["usage"]["requests"] > 0
    assert two["usage"]["latency_p50_s"] is not None  # gathered from the workers
