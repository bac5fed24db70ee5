"""The shard store: rows, unfinished markers and "is this shard done", one way for any
fsspec location (a local folder, ``memory://``; ``s3://`` is in ``test_storage.py``)."""

from __future__ import annotations

import uuid

import pyarrow as pa
import pytest

from parallelner import storage
from parallelner.storage import ShardStore


@pytest.fixture(params=["local", "memory"])
def root(request, tmp_path):
    if request.param == "local":
        return tmp_path / "shared"
    return f"memory://store-{uuid.uuid4().hex[:8]}"


def _table(n: int) -> pa.Table:
    return pa.table({"record_id": [f"r{i}" for i in range(n)]})


def test_a_shard_is_done_once_its_whole_rows_are_written_without_failures(root):
    store = ShardStore(root)
    state = store.state("cfg", "s1", 3)
    assert not state.done and state.token is None and state.damaged is None
    assert str(state.rows).endswith("rows/cfg/s1.parquet")
    assert type(state.rows) is type(root)

    store.write_rows(state.rows, _table(3), transient_failures=2)  # rows with failures
    unfinished = store.state("cfg", "s1", 3)
    assert not unfinished.done and unfinished.token
    assert store.marker(state.rows)["transient"] == 2

    store.write_rows(state.rows, _table(3), transient_failures=0)  # asked again: all answered
    assert store.state("cfg", "s1", 3) == storage.ShardState(True, state.rows)
    assert store.marker(state.rows) is None
    assert storage.read_table(state.rows).num_rows == 3


def test_rows_of_another_size_or_not_parquet_are_not_done(root):
    store = ShardStore(root)
    rows = store.rows_path("cfg", "s2")
    store.write_rows(rows, _table(2), transient_failures=0)
    assert (
        store.state("cfg", "s2", 3).damaged == "rows file holds 2 rows for a shard of 3 instances"
    )
    storage.write_lines(rows, ["not parquet"])
    state = store.state("cfg", "s2", 3)
    assert not state.done and state.damaged.startswith("rows file damaged")
    where = storage.set_aside(rows, state.damaged, "redone")
    assert not storage.exists(rows) and storage.exists(where)
    assert store.state("cfg", "s2", 3).damaged is None  # the name is free: a new shard
