"""The one atomic writer: a file or folder appears complete under its name, or not at all."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from parallelner.errors import ConfigError, StoreError
from parallelner.writers.atomic import AtomicTextWriter, atomic_path, write_table


def test_file_appears_only_when_complete(tmp_path):
    out = tmp_path / "sub" / "a.txt"
    with atomic_path(out) as tmp:
        tmp.write_text("hello")
        assert not out.exists() and tmp.parent == out.parent
    assert out.read_text() == "hello" and sorted(p.name for p in out.parent.iterdir()) == ["a.txt"]


def test_an_exception_leaves_nothing_behind(tmp_path):
    out = tmp_path / "a.txt"
    with pytest.raises(RuntimeError), atomic_path(out) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_directory_replaces_an_empty_folder_and_cleans_up_on_error(tmp_path):
    out = tmp_path / "export"
    out.mkdir()
    with atomic_path(out, directory=True) as tmp:
        (tmp / "data.txt").write_text("x")
    assert (out / "data.txt").read_text() == "x"
    other = tmp_path / "other"
    with pytest.raises(ValueError), atomic_path(other, directory=True) as tmp:
        (tmp / "f").write_text("x")
        raise ValueError
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]


def test_errors_name_the_path_and_the_given_error_type(tmp_path):
    (tmp_path / "dir").mkdir()
    with pytest.raises(ConfigError, match="is a directory"), atomic_path(tmp_path / "dir"):
        pass
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with (
        pytest.raises(StoreError, match="file/out: cannot write the export here"),
        atomic_path(blocker / "out", directory=True, error=StoreError, what="the export"),
    ):
        pass


def test_text_writer_and_table_writer(tmp_path):
    with AtomicTextWriter(tmp_path / "a.jsonl") as w:
        w.write_line("1")
        w.write_line("2")
    assert (tmp_path / "a.jsonl").read_text() == "1\n2\n" and w.count == 2
    with pytest.raises(KeyError), AtomicTextWriter(tmp_path / "b.jsonl") as w:
        w.write_line("1")
        raise KeyError
    assert not (tmp_path / "b.jsonl").exists()
    table = pa.table({"x": [1, 2]})
    write_table(table, tmp_path / "t.parquet")
    assert pq.read_table(tmp_path / "t.parquet").equals(table)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jsonl", "t.parquet"]


def test_a_stopped_process_removes_the_temporaries_of_writes_in_progress(tmp_path):
    from parallelner.writers.atomic import remove_temporaries

    with (
        atomic_path(tmp_path / "a.parquet") as tmp_file,
        atomic_path(tmp_path / "export", directory=True) as tmp_dir,
    ):
        (tmp_dir / "part-0.parquet").write_text("x")
        tmp_file.write_text("half")
        # what the SIGTERM handler of `parallelner run` does before os._exit
        assert remove_temporaries() == 2
        assert list(tmp_path.iterdir()) == []
        tmp_file.write_text("half")  # the writer goes on (os._exit cuts it off)
        (tmp_dir).mkdir()
    assert remove_temporaries() == 0  # finished writes are no longer pending
