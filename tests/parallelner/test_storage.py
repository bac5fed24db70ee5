"""Shards, rows and unfinished markers through one storage location: the home folder by
default (paths as before), or an object store URL (a real S3-compatible server, moto, on
loopback) that every Dask worker reaches (issue 18)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from parallelner import pipeline, storage
from parallelner.llm.runtime import LLMRuntime
from parallelner.settings import load_settings
from parallelner.shards import read_shard, shard_origins
from parallelner.testing.openai_server import OpenAIServer
from tests.flows.helpers import WIKINEURAL_SAMPLE, comparable


@pytest.fixture
def s3_env(s3_server, monkeypatch):
    """The moto server's variables in this process's environment."""
    for k, v in s3_server.items():
        monkeypatch.setenv(k, v)
    return s3_server


def _s3_objects(prefix: str) -> list[str]:
    from fsspec.core import url_to_fs

    fs, path = url_to_fs(prefix, **storage.s3_options())
    return sorted(p.removeprefix(path.rstrip("/") + "/") for p in fs.find(path))


@pytest.mark.parametrize("where", ["local", "s3"])
def test_locations_round_trip(where, request, tmp_path):
    if where == "s3":
        request.getfixturevalue("s3_env")
        root = f"s3://parallelner/{request.node.name.replace('[', '-').rstrip(']')}"
    else:
        root = tmp_path / "shared"
    loc = storage.join(root, "rows", "abc", "shard1.parquet")
    marker = storage.with_suffix(loc, ".unfinished")
    assert str(marker).endswith("rows/abc/shard1.unfinished")
    assert not storage.exists(loc) and not storage.exists(marker)

    table = pa.table({"record_id": ["r1", "r2"], "status": ["accepted", "review"]})
    storage.write_table(table, loc)
    storage.write_lines(marker, ['{"token": "t1"}'])
    assert storage.exists(loc) and storage.exists(marker)
    assert storage.read_table(loc).equals(table)
    assert storage.read_text(marker) == '{"token": "t1"}\n'
    storage.remove(marker)
    storage.remove(marker)  # absent: nothing to do
    assert not storage.exists(marker) and storage.exists(loc)
    with pytest.raises(FileNotFoundError):
        storage.read_text(marker)


def test_default_storage_is_the_home_folder(tmp_path):
    settings = load_settings(None, home=tmp_path / "home")
    assert storage.storage_root(settings) == tmp_path / "home"
    assert storage.join(storage.storage_root(settings), "shards") == tmp_path / "home" / "shards"
    shared = load_settings(None, home=tmp_path / "home", storage_url=str(tmp_path / "nfs"))
    assert storage.storage_root(shared) == tmp_path / "nfs"
    s3 = load_settings(None, storage_url="s3://bucket/team/")
    assert (
        storage.join(storage.storage_root(s3), "rows", "x.parquet")
        == "s3://bucket/team/rows/x.parquet"
    )


def test_s3_options_come_from_the_warehouse_variables():
    env = {
        "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9000",
        "AWS_ACCESS_KEY_ID": "minio",
        "AWS_SECRET_ACCESS_KEY": "minio-secret",
    }
    opts = storage.s3_options(env)
    assert opts["key"] == "minio" and opts["secret"] == "minio-secret"
    assert opts["client_kwargs"] == {
        "endpoint_url": "http://127.0.0.1:9000",
        "region_name": "us-east-1",
    }
    assert storage.redact("s3://minio:minio-secret@bucket/x") == "s3://***@bucket/x"


def _run(settings, *, reuse_runtime: LLMRuntime | None = None):
    plan = pipeline.plan_run([WIKINEURAL_SAMPLE], "zh", settings)
    with LLMRuntime(settings) as runtime:
        results = [pipeline.process_shard(s, plan, settings, runtime) for s in plan.shards]
    return plan, results, pipeline.finalize_run(plan, results, settings)


def test_a_run_on_s3_storage_gives_the_local_table_and_keeps_nothing_under_home(s3_env, tmp_path):
    from parallelner.store import load_snapshot

    with OpenAIServer(model="test-model") as srv:
        common = {"llm_base_url": srv.base_url, "llm_model": "test-model", "shard_size": 6}
        local = load_settings(None, home=tmp_path / "local", **common)
        _, _, local_summary = _run(local)
        prefix = "s3://parallelner/run-on-s3"
        remote = load_settings(None, home=tmp_path / "remote", storage_url=prefix, **common)
        plan, results, summary = _run(remote)
        srv.reset_log()
        _, again, _ = _run(remote)  # finished shards: rows read back from S3, nothing asked
        asked_again = len(srv.requests)

    assert [str(s.path) for s in plan.shards] == [
        f"{prefix}/shards/{s.id}.jsonl" for s in plan.shards
    ]
    assert shard_origins(plan.shards) == (["en"], ["wikineural"])
    assert sum(len(read_shard(s)) for s in plan.shards) == 20
    objects = _s3_objects(prefix)
    assert [o for o in objects if o.startswith("rows/")] == [
        f"rows/{plan.config_hash}/{s.id}.parquet" for s in sorted(plan.shards, key=lambda s: s.id)
    ]
    assert not (tmp_path / "remote" / "shards").exists()
    assert not (tmp_path / "remote" / "rows").exists()
    assert summary.counts == local_summary.counts
    rows = load_snapshot("main", settings=remote)
    assert comparable(rows) == comparable(load_snapshot("main", settings=local))
    assert asked_again == 0 and all(r.reused for r in again)


def test_unfinished_markers_live_in_s3_storage(s3_env, tmp_path):
    with OpenAIServer(model="test-model") as srv:
        settings = load_settings(
            None, home=tmp_path / "home", storage_url="s3://parallelner/unfinished",
            llm_base_url=srv.base_url, llm_model="test-model", shard_size=6,
            llm_outage_wait_s=0, translate={"max_retries": 0},
        )  # fmt: skip
        plan = pipeline.plan_run([WIKINEURAL_SAMPLE], "zh", settings, limit=6)
        shard = plan.shards[0]
        srv.set_down(True)
        with LLMRuntime(settings) as runtime:
            first = pipeline.process_shard(shard, plan, settings, runtime)
        token = pipeline.shard_unfinished(settings, plan.config_hash, shard)
        assert token is not None and first.counts == {"failed": 6}
        assert storage.exists(storage.with_suffix(first.path, ".unfinished"))
        assert (
            pipeline.finalize_run(plan, [first], settings, commit=False).unfinished["shards"] == 1
        )
        srv.set_down(False)
        with LLMRuntime(settings) as runtime:
            second = pipeline.process_shard(shard, plan, settings, runtime)
    assert second.retried and "failed" not in second.counts
    assert pipeline.shard_unfinished(settings, plan.config_hash, shard) is None
    assert not storage.exists(storage.with_suffix(second.path, ".unfinished"))
    assert not Path(tmp_path / "home" / "rows").exists()
