"""The dataset store: Iceberg commits, immutable tags, exports, integrity, bad input.

Runs on the real SQL catalog on SQLite and on the PostgreSQL server the test set-up
starts (`postgres_url` in tests/conftest.py). Records are built from real sentences of
data/projection-dev (source, independently annotated target spans, mixed statuses).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from parallelner import store
from parallelner.errors import StoreError
from parallelner.reasons import Reason, Status
from parallelner.records import (
    Entity,
    MentionTranslation,
    ParallelRecord,
    ProjectedEntity,
    UnprojectedEntity,
    arrow_schema,
    table_to_records,
)
from parallelner.settings import Settings, load_settings

DATA = Path(__file__).resolve().parents[2] / "data" / "projection-dev"
_STATUSES = [Status.ACCEPTED, Status.REVIEW, Status.REJECTED, Status.ACCEPTED, Status.FAILED]


def real_records(file: str, n: int, run_id: str, *, offset: int = 0) -> list[ParallelRecord]:
    """``n`` records from a projection-dev file: source, gold target spans, mixed statuses."""
    lines = (DATA / file).read_text("utf-8").splitlines()[offset : offset + n]
    out = []
    for i, line in enumerate(lines):
        task = json.loads(line)
        src = [Entity(**e) for e in task["source"]["entities"]]
        gold = task["gold"]
        status = _STATUSES[(i + offset) % len(_STATUSES)]
        tgt = tuple(
            ProjectedEntity(
                **g,
                source_index=min(j, len(src) - 1) if src else 0,
                method="exact",
                score=1.0 - 0.01 * j,
            )
            for j, g in enumerate(gold)
        )
        unprojected = tuple(
            UnprojectedEntity(source_index=j, label=e.label, text=e.text, reason=Reason.NOT_FOUND)
            for j, e in enumerate(src)
            if j >= len(gold)
        )
        out.append(
            ParallelRecord(
                record_id=f"{task['id']}",
                instance_id=task["source"]["id"],
                run_id=run_id,
                source_dataset="pud-en-zh" if "pud" in file else "europarl",
                src_lang=task["source"]["lang"],
                tgt_lang=task["target"]["lang"],
                src_text=task["source"]["text"],
                src_entities=tuple(src),
                tgt_text=None if status is Status.FAILED else task["target"]["text"],
                mention_translations=tuple(
                    MentionTranslation(id=j, source=e.text, target=e.text)
                    for j, e in enumerate(src)
                ),
                tgt_entities=() if status is Status.FAILED else tgt,
                unprojected=unprojected,
                back_translation=task["source"]["text"] if i % 2 else None,
                repair_steps=("annotation_rephrase",) if unprojected else (),
                scores={"chrf": 40.0 + i, "projection": 0.9} if i % 3 else {},
                status=status,
                reasons=(Reason.AUDIT_SAMPLE,)
                if status is Status.ACCEPTED and i % 2
                else ((Reason.REPLY_INVALID_JSON,) if status is Status.FAILED else ()),
                pipeline_version="0.1.0",
                prompt_version="translate.v1",
                model="gemma-3-270m",
                config_hash="0123456789abcdef",
                created_at=datetime(2026, 11, 25, 8, i % 60, 1, 123456, tzinfo=UTC),
                raw_reply="{not json" if status is Status.FAILED else None,
            )
        )
    return out


def reviewed(records: list[ParallelRecord], run_id: str) -> list[ParallelRecord]:
    """The review pull's version of the rows waiting for review: accepted by an annotator."""
    return [
        r.model_copy(
            update={
                "status": Status.REVIEWED_ACCEPTED,
                "annotator": "ann1",
                "run_id": run_id,
                "reviewed_at": datetime(2026, 11, 25, 9, 30, tzinfo=UTC),
                "review_comment": "ok ✓",
            }
        )
        for r in records
        if r.status is Status.REVIEW
    ]


def by_id(records: list[ParallelRecord]) -> list[ParallelRecord]:
    return sorted(records, key=lambda r: r.record_id)


@pytest.fixture(params=["sqlite", "postgres"])
def settings(request, tmp_path) -> Settings:
    """Store settings on a fresh SQLite catalog, or on a fresh Postgres database."""
    if request.param == "sqlite":
        return load_settings(home=tmp_path / "home")
    url = request.getfixturevalue("postgres_database")
    return load_settings(
        home=tmp_path / "home", catalog_uri=url, warehouse=str(tmp_path / "warehouse")
    )


@pytest.fixture
def sqlite_settings(tmp_path) -> Settings:
    return load_settings(home=tmp_path / "home")


def data_files(settings: Settings) -> dict[str, str]:
    """Every Parquet data file in the warehouse -> its SHA-256."""
    root = Path(settings.warehouse) if settings.warehouse else Path(settings.home) / "warehouse"
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*.parquet")}


# ---------------------------------------------------------------------------------------
# commits and round trips


def test_commit_then_load_round_trips_exactly(settings):
    records = real_records("pud-en-zh.jsonl", 20, "run-1")
    sid = store.commit(records, "run-1", settings=settings)
    table = store.load_snapshot(sid, settings=settings)
    assert table.schema.equals(arrow_schema())
    assert table_to_records(table) == by_id(records)
    assert store.load_snapshot("main", settings=settings).equals(table)


def test_every_commit_is_a_new_snapshot_and_old_files_stay_unchanged(settings):
    first = real_records("pud-en-zh.jsonl", 20, "run-1")
    s1 = store.commit(first, "run-1", settings=settings)
    files_before = data_files(settings)
    s2 = store.commit(real_records("europarl-en-de.jsonl", 10, "run-2"), "run-2", settings=settings)
    s3 = store.commit(reviewed(first, "pull-1"), "pull-1", settings=settings, replace=True)
    assert len({s1, s2, s3}) == 3
    after = data_files(settings)
    assert {p: after[p] for p in files_before} == files_before  # never rewritten in place
    snaps = store.list_snapshots(settings)
    assert [s["run_id"] for s in snaps] == ["run-1", "run-2", "pull-1"]  # one snapshot each
    assert [s["operation"] for s in snaps] == ["append", "append", "overwrite"]
    assert snaps[-1]["snapshot_id"] == s3 and snaps[-1]["current"]
    latest = {r.record_id: r for r in table_to_records(store.load_snapshot(s3, settings=settings))}
    assert len(latest) == 30  # replaced rows are not duplicated
    assert latest["pud-00001-zh"].status is Status.REVIEWED_ACCEPTED
    assert latest["pud-00001-zh"].review_comment == "ok ✓"
    assert latest["pud-00000-zh"] == first[0]


def test_commit_properties_land_in_the_snapshot_summary(sqlite_settings):
    sid = store.commit(
        real_records("pud-en-zh.jsonl", 3, "r"),
        "r",
        settings=sqlite_settings,
        properties={"config_hash": "abc"},
    )
    with store.table.reading(sqlite_settings) as table:
        props = table.snapshot_by_id(sid).summary.additional_properties
    assert props["parallelner.config_hash"] == "abc"
    assert props["parallelner.run-id"] == "r"


def test_duplicate_record_ids_in_one_commit_are_refused(sqlite_settings):
    rec = real_records("pud-en-zh.jsonl", 1, "r")
    with pytest.raises(StoreError, match="appears twice"):
        store.commit(rec + rec, "r", settings=sqlite_settings)


def test_appending_records_already_in_the_table_is_refused(settings):
    first = real_records("pud-en-zh.jsonl", 10, "run-1")
    sid = store.commit(first, "run-1", settings=settings)
    rerun = real_records("pud-en-zh.jsonl", 12, "run-2")  # same instances + 2 new ones
    with pytest.raises(StoreError, match="run run-2: 10 of 12 records are already in the table"):
        store.commit(rerun, "run-2", settings=settings)
    assert [s["snapshot_id"] for s in store.list_snapshots(settings)] == [sid]
    # superseding them is explicit
    store.commit(rerun, "run-2", settings=settings, replace=True)
    assert table_to_records(store.load_snapshot("main", settings=settings)) == by_id(rerun)


def test_a_table_with_other_columns_is_refused_not_trimmed(sqlite_settings):
    from parallelner.records import records_to_table

    table = records_to_table(real_records("pud-en-zh.jsonl", 3, "r"))
    extra = table.append_column("note", pa.array(["x", "y", "z"]))
    with pytest.raises(StoreError, match="columns not in the ParallelRecord schema: note"):
        store.commit(extra, "r", settings=sqlite_settings)
    missing = table.drop_columns(["status"])
    with pytest.raises(StoreError, match="rows do not match the ParallelRecord schema"):
        store.commit(missing, "r", settings=sqlite_settings)
    sid = store.commit(table, "r", settings=sqlite_settings)  # a plain Arrow table is fine
    assert store.load_snapshot(sid, settings=sqlite_settings).equals(table.sort_by("record_id"))


# ---------------------------------------------------------------------------------------
# tags


def test_tag_returns_the_same_rows_after_later_commits(settings):
    first = real_records("pud-en-zh.jsonl", 25, "run-1")
    store.commit(first, "run-1", settings=settings)
    note = store.create_tag("v1", settings=settings)
    tagged = store.load_snapshot("v1", settings=settings)
    store.commit(real_records("europarl-en-es.jsonl", 15, "run-2"), "run-2", settings=settings)
    store.commit(reviewed(first, "pull-1"), "pull-1", settings=settings, replace=True)
    again = store.load_snapshot("v1", settings=settings)
    assert again.equals(tagged)
    assert table_to_records(again) == by_id(first)
    assert note["statistics"]["records"] == 25
    assert store.load_snapshot("main", settings=settings).num_rows == 40


def test_tags_are_immutable(settings):
    store.commit(real_records("pud-en-zh.jsonl", 5, "run-1"), "run-1", settings=settings)
    first = store.create_tag("v1", settings=settings)
    later = store.commit(
        real_records("pud-en-zh.jsonl", 5, "run-2", offset=5), "run-2", settings=settings
    )
    with pytest.raises(StoreError, match="v1: a tag with this name already exists"):
        store.create_tag("v1", snapshot=later, settings=settings)
    assert store.show("v1", settings=settings)["snapshot_id"] == first["snapshot_id"]
    assert store.load_snapshot("v1", settings=settings).num_rows == 5


def test_two_people_tagging_the_same_name_at_once(settings):
    store.commit(real_records("pud-en-zh.jsonl", 5, "run-1"), "run-1", settings=settings)
    barrier = threading.Barrier(2)
    results: list[object] = []

    def tag():
        barrier.wait(timeout=30)
        try:
            results.append(store.create_tag("v1", settings=settings)["snapshot_id"])
        except StoreError as exc:
            results.append(str(exc))

    threads = [threading.Thread(target=tag) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    wins = [r for r in results if isinstance(r, int)]
    losses = [r for r in results if isinstance(r, str)]
    assert len(wins) == 1 and len(losses) == 1, results
    assert "v1: a tag with this name already exists" in losses[0]


def test_tag_an_older_snapshot_by_id(sqlite_settings):
    s1 = store.commit(real_records("pud-en-zh.jsonl", 4, "a"), "a", settings=sqlite_settings)
    store.commit(real_records("pud-en-zh.jsonl", 4, "b", offset=4), "b", settings=sqlite_settings)
    note = store.create_tag("v0", snapshot=str(s1), settings=sqlite_settings)
    assert note["snapshot_id"] == s1
    assert store.load_snapshot("v0", settings=sqlite_settings).num_rows == 4
    saved = json.loads((Path(sqlite_settings.home) / "releases" / "v0.json").read_text())
    assert saved["snapshot_id"] == s1


def test_tag_lands_even_when_the_note_copy_cannot_be_written(sqlite_settings, caplog):
    store.commit(real_records("pud-en-zh.jsonl", 3, "r"), "r", settings=sqlite_settings)
    (Path(sqlite_settings.home) / "releases").write_text("a file in the way")
    note = store.create_tag("v1", settings=sqlite_settings)
    assert store.show("v1", settings=sqlite_settings)["snapshot_id"] == note["snapshot_id"]
    assert "release note of v1 not copied" in caplog.text


def test_release_note_counts_directions_statuses_labels_and_audit(sqlite_settings):
    zh = real_records("pud-en-zh.jsonl", 10, "run-1")
    de = real_records("europarl-en-de.jsonl", 5, "run-1")
    store.commit(zh + de, "run-1", settings=sqlite_settings)
    # annotators judge two audit samples: one confirmed, one rejected
    audit = [r for r in zh if Reason.AUDIT_SAMPLE in r.reasons][:2]
    judged = [
        audit[0].model_copy(update={"status": Status.REVIEWED_ACCEPTED, "run_id": "pull-1"}),
        audit[1].model_copy(update={"status": Status.REVIEWED_REJECTED, "run_id": "pull-1"}),
    ]
    store.commit(judged, "pull-1", settings=sqlite_settings, replace=True)
    note = store.create_tag("v1", settings=sqlite_settings)
    st = note["statistics"]
    rows = {r.record_id: r for r in zh + de} | {r.record_id: r for r in judged}
    assert st["records"] == 15
    assert st["by_direction"]["en->zh"]["records"] == 10
    assert st["by_direction"]["en->de"]["records"] == 5
    expected_status: dict[str, int] = {}
    for r in rows.values():
        expected_status[r.status.value] = expected_status.get(r.status.value, 0) + 1
    assert st["by_status"] == dict(sorted(expected_status.items()))
    accepted = sum(r.status in (Status.ACCEPTED, Status.REVIEWED_ACCEPTED) for r in rows.values())
    assert st["acceptance_rate"] == round(accepted / 15, 4)
    assert st["audited_precision"] == 0.5 and st["audited_pairs"] == 2
    per = sum(1 for r in zh for e in r.src_entities if e.label == "PER")
    assert st["source_labels"]["en->zh"]["PER"] == per
    prov = note["provenance"]
    assert prov["prompt_versions"] == ["translate.v1"]
    assert prov["config_hashes"] == ["0123456789abcdef"]
    assert prov["runs"] == ["pull-1", "run-1"]


@pytest.mark.parametrize(
    "name", ["a/b", "../v1", "v 1", "v1\\x", "", " v1", "main", "-v1", "12345", "v1;rm"]
)
def test_bad_tag_names_are_refused(sqlite_settings, name):
    store.commit(real_records("pud-en-zh.jsonl", 2, "r"), "r", settings=sqlite_settings)
    with pytest.raises(StoreError, match="not a valid tag name"):
        store.create_tag(name, settings=sqlite_settings)
    with store.table.reading(sqlite_settings) as table:
        assert [n for n, r in table.refs().items() if r.snapshot_ref_type == "tag"] == []


def test_a_tag_name_too_long_is_called_too_long(sqlite_settings):
    store.commit(real_records("pud-en-zh.jsonl", 3, "run-1"), "run-1", settings=sqlite_settings)
    with pytest.raises(StoreError, match="it is 101 characters long \\(100 at most\\)"):
        store.create_tag("v" * 101, settings=sqlite_settings)
    assert store.create_tag("v" * 100, settings=sqlite_settings)


@pytest.mark.parametrize(
    "name,match",
    [("v9", "v9: no such tag or snapshot"), ("123456789", "123456789: no snapshot with this id")],
)
def test_unknown_tag_or_snapshot_id(sqlite_settings, name, match):
    store.commit(real_records("pud-en-zh.jsonl", 2, "r"), "r", settings=sqlite_settings)
    with pytest.raises(StoreError, match=match):
        store.load_snapshot(name, settings=sqlite_settings)
    with pytest.raises(StoreError, match=match):
        store.create_tag("v1", snapshot=name, settings=sqlite_settings)


def test_status_filter(sqlite_settings):
    records = real_records("pud-en-zh.jsonl", 20, "r")
    store.commit(records, "r", settings=sqlite_settings)
    store.create_tag("v1", settings=sqlite_settings)
    got = store.load_snapshot("v1", status="accepted,reviewed_accepted", settings=sqlite_settings)
    want = by_id([r for r in records if r.status is Status.ACCEPTED])
    assert table_to_records(got) == want and want
    with pytest.raises(StoreError, match="unknown status acepted"):
        store.load_snapshot("v1", status=["acepted"], settings=sqlite_settings)


def test_load_snapshot_by_home_and_to_pandas(sqlite_settings):
    records = real_records("pud-en-zh.jsonl", 6, "r")
    store.commit(records, "r", settings=sqlite_settings)
    store.create_tag("v1", settings=sqlite_settings)
    import parallelner

    df = parallelner.load_snapshot("v1", home=sqlite_settings.home).to_pandas()
    assert sorted(df["record_id"]) == sorted(r.record_id for r in records)


def test_diff_matches_a_row_by_row_comparison(settings):
    first = real_records("pud-en-zh.jsonl", 30, "run-1")
    store.commit(first, "run-1", settings=settings)
    store.create_tag("v1", settings=settings)
    store.commit(real_records("europarl-en-it.jsonl", 7, "run-2"), "run-2", settings=settings)
    store.commit(reviewed(first, "pull-1"), "pull-1", settings=settings, replace=True)
    d = store.diff_snapshots("v1", "main", settings=settings)
    old = {r.record_id: r for r in table_to_records(store.load_snapshot("v1", settings=settings))}
    new = {r.record_id: r for r in table_to_records(store.load_snapshot("main", settings=settings))}
    changed = [k for k in old.keys() & new.keys() if old[k] != new[k]]
    assert (d["added"], d["removed"], d["changed"]) == (
        len(new.keys() - old.keys()),
        0,
        len(changed),
    )
    assert d["unchanged"] == len(old) - len(changed)
    assert d["status_changes"] == {
        "(new) -> accepted": 3,
        "(new) -> failed": 1,
        "(new) -> rejected": 1,
        "(new) -> review": 2,
        "review -> reviewed_accepted": len(changed),
    }
    assert store.diff_snapshots("v1", "v1", settings=settings)["changed"] == 0


def _edits(r: ParallelRecord) -> list[ParallelRecord]:
    """Small changes anywhere in a record, nested fields included, and no change at all."""
    e = r.tgt_entities[0]
    return [
        r,
        r.model_copy(update={"scores": {**r.scores, "chrf": 12.5}}),
        r.model_copy(update={"scores": {**r.scores, "extra": 1.0}}),
        r.model_copy(update={"scores": {}}),
        r.model_copy(
            update={"tgt_entities": (e.model_copy(update={"score": 0.5}), *r.tgt_entities[1:])}
        ),
        r.model_copy(update={"tgt_entities": r.tgt_entities[1:]}),
        r.model_copy(
            update={"tgt_entities": (e.model_copy(update={"method": "fuzzy"}), *r.tgt_entities[1:])}
        ),
        r.model_copy(update={"reasons": (Reason.AUDIT_SAMPLE, Reason.DUPLICATE)}),
        r.model_copy(update={"reviewed_at": datetime(2026, 1, 1, tzinfo=UTC)}),
        r.model_copy(update={"tgt_text": None}),
        r.model_copy(update={"repair_steps": ("sentence_rephrase",)}),
    ]


def test_rows_differ_agrees_with_record_equality():
    from parallelner.records import records_to_table
    from parallelner.store.read import rows_differ

    base = [r for r in real_records("pud-en-zh.jsonl", 12, "r") if len(r.tgt_entities) > 1]
    pairs = [(r, edited) for r in base for edited in _edits(r)]
    old = records_to_table([a for a, _ in pairs])
    new = records_to_table([b for _, b in pairs])
    differs = sum(rows_differ(old.column(n), new.column(n)) for n in old.column_names) > 0
    assert list(differs) == [a != b for a, b in pairs]
    assert sum(differs) >= len(base) * 8  # (an edit can be a no-op, e.g. scores already {})


# ---------------------------------------------------------------------------------------
# concurrency: a synthesize run and review pulls committing at the same moment


def test_concurrent_writers_all_land(settings):
    base = real_records("pud-en-zh.jsonl", 30, "run-0")
    store.commit(base, "run-0", settings=settings)
    batches = {
        f"run-{i}": real_records("europarl-en-it.jsonl", 10, f"run-{i}", offset=10 * i)
        for i in range(1, 4)
    }
    pull = reviewed(base, "pull-1")
    barrier = threading.Barrier(len(batches) + 1)
    errors: list[BaseException] = []
    ids: list[int] = []

    def write(data, run_id, replace=False):
        try:
            barrier.wait(timeout=30)
            ids.append(store.commit(data, run_id, settings=settings, replace=replace))
        except BaseException as exc:  # reported below, with the others
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(d, r)) for r, d in batches.items()]
    threads.append(threading.Thread(target=write, args=(pull, "pull-1", True)))
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert errors == []
    assert len(set(ids)) == 4
    final = {
        r.record_id: r for r in table_to_records(store.load_snapshot("main", settings=settings))
    }
    assert len(final) == 30 + 30
    for run_id, data in batches.items():
        assert all(final[r.record_id] == r for r in data), run_id
    assert all(final[r.record_id] == r for r in pull)
    runs = [s["run_id"] for s in store.list_snapshots(settings)]
    assert sorted(runs) == ["pull-1", "run-0", "run-1", "run-2", "run-3"]  # one snapshot each


def _lose_the_race_once(monkeypatch, other_writer) -> list:
    """Make our next read of the table stale: ``other_writer()`` commits right after it
    (once: its own reads are not raced). Returns what the other writer returned."""
    real_load = store.table.load_table
    raced: list = []
    started: list[bool] = []

    def load_then_lose_the_race(catalog, s, *, create=False):
        table = real_load(catalog, s, create=create)
        if not started:
            started.append(True)
            raced.append(other_writer())
        return table  # now stale: its commit must fail, reload and retry

    monkeypatch.setattr(store.table, "load_table", load_then_lose_the_race)
    return raced


@pytest.mark.parametrize("pyiceberg_retries", [None, "0"])
def test_a_commit_that_loses_the_race_reloads_and_lands(
    settings, monkeypatch, caplog, pyiceberg_retries
):
    """Deterministic race: another writer commits between our read and our commit.

    With pyiceberg's own retries switched off, our reload-and-redo loop must do it.
    """
    store.commit(real_records("pud-en-zh.jsonl", 5, "run-0"), "run-0", settings=settings)
    if pyiceberg_retries is not None:
        with store.table.reading(settings) as table, table.transaction() as tx:
            tx.set_properties({"commit.retry.num-retries": pyiceberg_retries})
    other = real_records("europarl-en-es.jsonl", 5, "run-other")
    raced = _lose_the_race_once(
        monkeypatch, lambda: store.commit(other, "run-other", settings=settings)
    )
    caplog.set_level("INFO", logger="parallelner.store.table")
    mine = real_records("europarl-en-it.jsonl", 5, "run-mine")
    sid = store.commit(mine, "run-mine", settings=settings)
    # pyiceberg's own re-basing is off for our commits (it skips the duplicate check):
    # with or without the table's setting, our loop reloads and lands
    assert "run run-mine: another writer committed first" in caplog.text
    monkeypatch.undo()
    rows = table_to_records(store.load_snapshot(sid, settings=settings))
    assert len(rows) == 15
    assert {r.run_id for r in rows} == {"run-0", "run-other", "run-mine"}
    with store.table.reading(settings) as table:
        assert table.snapshot_by_id(sid).parent_snapshot_id == raced[0]


@pytest.mark.parametrize("pyiceberg_retries", [None, "0"])
def test_two_review_pulls_rewriting_the_same_file_both_land(
    settings, monkeypatch, pyiceberg_retries
):
    """Two replaces of different rows that live in one data file, racing."""
    base = real_records("pud-en-zh.jsonl", 30, "run-0")
    store.commit(base, "run-0", settings=settings)  # one data file holds all 30 rows
    if pyiceberg_retries is not None:
        with store.table.reading(settings) as table, table.transaction() as tx:
            tx.set_properties({"commit.retry.num-retries": pyiceberg_retries})
    pending = reviewed(base, "pull")
    pull_a = [r.model_copy(update={"run_id": "pull-a"}) for r in pending[:3]]
    pull_b = [r.model_copy(update={"run_id": "pull-b"}) for r in pending[3:]]
    _lose_the_race_once(
        monkeypatch, lambda: store.commit(pull_b, "pull-b", settings=settings, replace=True)
    )
    store.commit(pull_a, "pull-a", settings=settings, replace=True)
    monkeypatch.undo()
    final = table_to_records(store.load_snapshot("main", settings=settings))
    assert len(final) == 30 and len({r.record_id for r in final}) == 30
    expected = {r.record_id: r for r in base} | {r.record_id: r for r in pull_a + pull_b}
    assert final == by_id(list(expected.values()))
    assert [s["run_id"] for s in store.list_snapshots(settings)] == ["run-0", "pull-b", "pull-a"]


def test_two_commits_of_one_run_at_once_land_once(settings, monkeypatch):
    """Deterministic race: the same run's rows commit while ours is between read and commit.

    Ours must read the ids again and refuse, not re-base the same rows onto the other's
    snapshot (that gave two snapshots and every row twice).
    """
    rows = real_records("europarl-en-it.jsonl", 12, "run-1")
    raced = _lose_the_race_once(monkeypatch, lambda: store.commit(rows, "run-1", settings=settings))
    with pytest.raises(StoreError, match="12 of 12 records are already in the table"):
        store.commit(rows, "run-1", settings=settings)
    monkeypatch.undo()
    assert [s["snapshot_id"] for s in store.list_snapshots(settings)] == raced
    ids = [r.record_id for r in table_to_records(store.load_snapshot("main", settings=settings))]
    assert sorted(ids) == sorted(r.record_id for r in rows)


def test_two_threads_committing_one_run_land_once(sqlite_settings):
    store.commit(real_records("pud-en-zh.jsonl", 5, "run-0"), "run-0", settings=sqlite_settings)
    rows = real_records("europarl-en-it.jsonl", 40, "run-1")
    barrier = threading.Barrier(2)
    landed: list[int] = []
    refused: list[StoreError] = []

    def write() -> None:
        barrier.wait(timeout=30)
        try:
            landed.append(store.commit(rows, "run-1", settings=sqlite_settings))
        except StoreError as exc:
            refused.append(exc)

    threads = [threading.Thread(target=write) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert len(landed) == 1 and len(refused) == 1, refused
    assert "already in the table" in str(refused[0])
    runs = [s["run_id"] for s in store.list_snapshots(sqlite_settings)]
    assert runs == ["run-0", "run-1"]
    ids = [
        r.record_id for r in table_to_records(store.load_snapshot("main", settings=sqlite_settings))
    ]
    assert len(ids) == len(set(ids)) == 45


def test_append_new_adds_only_the_rows_the_table_lacks(settings):
    first = real_records("europarl-en-it.jsonl", 10, "run-a")
    store.commit(first, "run-a", settings=settings)
    both = real_records("europarl-en-it.jsonl", 25, "run-b")
    done = store.table.append_new(both, "run-b", settings=settings)
    assert (done.added, done.skipped) == (15, 10)
    final = {
        r.record_id: r for r in table_to_records(store.load_snapshot("main", settings=settings))
    }
    assert len(final) == 25
    assert all(final[r.record_id] == r for r in first)  # the earlier rows stay as they were
    again = store.table.append_new(both, "run-c", settings=settings)
    assert again == store.table.Appended(None, 0, 25)
    assert [s["run_id"] for s in store.list_snapshots(settings)] == ["run-a", "run-b"]


def _commit_in_process(args: tuple) -> int:
    """Worker for the two-process test: wait for the common start instant, then commit."""
    import time

    home, uri, warehouse, start_at, kind = args
    s = load_settings(home=home, catalog_uri=uri, warehouse=warehouse)
    base = real_records("pud-en-zh.jsonl", 30, "run-0")
    if kind == "pull":
        data, run_id, replace = reviewed(base, "pull-1"), "pull-1", True
    else:
        data, run_id, replace = real_records("europarl-en-de.jsonl", 40, "run-1"), "run-1", False
    time.sleep(max(0.0, start_at - time.time()))
    return store.commit(data, run_id, settings=s, replace=replace)


def test_a_synthesize_run_and_a_review_pull_in_two_processes_both_land(settings):
    import multiprocessing
    import time

    base = real_records("pud-en-zh.jsonl", 30, "run-0")
    store.commit(base, "run-0", settings=settings)
    uri = settings.catalog_uri.get_secret_value() if settings.catalog_uri else None
    start_at = time.time() + 5  # both processes are up and have imported by then
    jobs = [(settings.home, uri, settings.warehouse, start_at, kind) for kind in ("run", "pull")]
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        ids = pool.map(_commit_in_process, jobs)
    assert len(set(ids)) == 2
    final = {
        r.record_id: r for r in table_to_records(store.load_snapshot("main", settings=settings))
    }
    assert len(final) == 70
    for r in reviewed(base, "pull-1") + real_records("europarl-en-de.jsonl", 40, "run-1"):
        assert final[r.record_id] == r
    assert sorted(s["run_id"] for s in store.list_snapshots(settings)) == [
        "pull-1",
        "run-0",
        "run-1",
    ]


# ---------------------------------------------------------------------------------------
# exports


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_tag_export_load_round_trip(settings, tmp_path, fmt):
    records = real_records("pud-en-zh.jsonl", 30, "run-1")
    store.commit(records, "run-1", settings=settings)
    store.create_tag("v1", settings=settings)
    store.commit(reviewed(records, "pull-1"), "pull-1", settings=settings, replace=True)
    out = tmp_path / "export"
    meta = store.export_snapshot("v1", out, fmt=fmt, settings=settings)
    assert store.verify_export(out)["ok"]
    exported = store.read_export(out)
    loaded = store.load_snapshot("v1", settings=settings)
    # privacy by default: raw LLM replies are left out (v1 has no annotators yet)
    i = loaded.schema.get_field_index("raw_reply")
    private = loaded.set_column(i, loaded.schema.field(i), pa.nulls(loaded.num_rows, pa.string()))
    assert exported.equals(private)
    full = tmp_path / "full"
    store.export_snapshot("v1", full, fmt=fmt, include_raw=True, settings=settings)
    assert store.read_export(full).equals(loaded)
    assert table_to_records(store.read_export(full)) == by_id(records)
    assert (
        meta["records"] == 30
        and meta["snapshot_id"] == store.show("v1", settings=settings)["snapshot_id"]
    )
    card = (out / "README.md").read_text("utf-8")
    assert "cc-by-sa-4.0" in card and "Universal NER" in card  # credits of the source corpus
    assert "| `src_entities` |" in card and "en->zh" in card
    listed = (out / "SHA256SUMS").read_text().split()
    assert f"data/train-00000-of-00001.{fmt}" in listed and "README.md" in listed
    assert sorted(meta["files"]) == sorted(n for n in listed if n.startswith("data/"))


def test_export_status_filter_and_parquet_is_plain(sqlite_settings, tmp_path):
    records = real_records("europarl-en-de.jsonl", 20, "r")
    store.commit(records, "r", settings=sqlite_settings)
    store.create_tag("v1", settings=sqlite_settings)
    out = tmp_path / "x"
    store.export_snapshot("v1", out, status="accepted,reviewed_accepted", settings=sqlite_settings)
    plain = pq.read_table(out / "data")  # no ParallelNER needed to read it
    assert sorted(plain.column("record_id").to_pylist()) == sorted(
        r.record_id for r in records if r.status is Status.ACCEPTED
    )
    assert set(plain.column("status").to_pylist()) == {"accepted"}


def test_export_into_non_empty_directory_is_refused(sqlite_settings, tmp_path):
    store.commit(real_records("pud-en-zh.jsonl", 3, "r"), "r", settings=sqlite_settings)
    out = tmp_path / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(StoreError, match="busy: directory is not empty"):
        store.export_snapshot("main", out, settings=sqlite_settings)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy", "home"]  # no temp leftovers


def test_export_into_empty_existing_directory(sqlite_settings, tmp_path):
    store.commit(real_records("pud-en-zh.jsonl", 3, "r"), "r", settings=sqlite_settings)
    out = tmp_path / "empty"
    out.mkdir()
    meta = store.export_snapshot("main", out, settings=sqlite_settings)
    # a data file per non-empty split, metadata.json, README.md
    assert store.verify_export(out)["files"] == len(meta["files"]) + 2


def test_failed_export_leaves_nothing(sqlite_settings, tmp_path):
    store.commit(real_records("pud-en-zh.jsonl", 3, "r"), "r", settings=sqlite_settings)
    with pytest.raises(StoreError, match="no such tag"):
        store.export_snapshot("nope", tmp_path / "out", settings=sqlite_settings)
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["home"]


def _exported(settings: Settings, out: Path) -> Path:
    store.commit(real_records("pud-en-zh.jsonl", 10, "r"), "r", settings=settings)
    store.create_tag("v1", settings=settings)
    store.export_snapshot("v1", out, settings=settings)
    return out / "data" / "train-00000-of-00001.parquet"


def test_tampered_export_file_is_reported(sqlite_settings, tmp_path):
    data = _exported(sqlite_settings, tmp_path / "e")
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    data.write_bytes(bytes(raw))
    with pytest.raises(StoreError, match=r"train-00000-of-00001.parquet: content changed"):
        store.verify_export(tmp_path / "e")
    with pytest.raises(StoreError, match=r"train-00000-of-00001.parquet: content changed"):
        store.read_export(tmp_path / "e")  # a reader of an export checks too


def test_missing_export_file_is_reported(sqlite_settings, tmp_path):
    data = _exported(sqlite_settings, tmp_path / "e")
    data.unlink()
    with pytest.raises(StoreError, match=r"train-00000-of-00001.parquet: missing"):
        store.verify_export(tmp_path / "e")
    with pytest.raises(StoreError, match=r"train-00000-of-00001.parquet: missing"):
        store.read_export(tmp_path / "e")


def test_export_where_no_directory_can_be_made(sqlite_settings, tmp_path):
    store.commit(real_records("pud-en-zh.jsonl", 3, "r"), "r", settings=sqlite_settings)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(
        StoreError, match=r"file/out: cannot export here: .*/file is a file, not a folder"
    ):
        store.export_snapshot("main", blocker / "out", settings=sqlite_settings)
    assert blocker.read_text() == "x"


def test_extra_data_file_and_bad_checksum_line_are_reported(sqlite_settings, tmp_path):
    data = _exported(sqlite_settings, tmp_path / "e")
    shutil.copy(data, data.with_name("records-99999.parquet"))
    sums = tmp_path / "e" / "SHA256SUMS"
    n = len(sums.read_text().splitlines())
    sums.write_text(sums.read_text() + "garbage\n")
    with pytest.raises(StoreError) as err:
        store.verify_export(tmp_path / "e")
    assert "records-99999.parquet: data file not listed" in str(err.value)
    assert f"SHA256SUMS:{n + 1}: malformed checksum line" in str(err.value)


def test_not_an_export_is_reported(tmp_path):
    with pytest.raises(StoreError, match="checksum file missing"):
        store.verify_export(tmp_path)


# ---------------------------------------------------------------------------------------
# a damaged store


def test_catalog_file_that_is_not_a_catalog(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "catalog.db").write_text("these are my notes, not a database\n")
    s = load_settings(home=home)
    with pytest.raises(StoreError, match="catalog.db: not a catalog"):
        store.load_snapshot("v1", settings=s)
    with pytest.raises(StoreError, match="catalog.db: not a catalog"):
        store.commit(real_records("pud-en-zh.jsonl", 1, "r"), "r", settings=s)
    assert (home / "catalog.db").read_text() == "these are my notes, not a database\n"
    assert not (home / "warehouse").exists()


def test_sqlite_database_of_something_else_is_not_a_catalog(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    with sqlite3.connect(home / "catalog.db") as db:
        db.execute("create table notes (x text)")
    s = load_settings(home=home)
    with pytest.raises(StoreError, match="catalog.db: not a catalog .*other tables: notes"):
        store.load_snapshot("v1", settings=s)
    with pytest.raises(StoreError, match="catalog.db: not a catalog"):
        store.commit(real_records("pud-en-zh.jsonl", 1, "r"), "r", settings=s)
    with sqlite3.connect(home / "catalog.db") as db:  # untouched
        tables = {r[0] for r in db.execute("select name from sqlite_master where type='table'")}
    assert tables == {"notes"}


def test_no_catalog_yet(tmp_path):
    with pytest.raises(StoreError, match="no dataset catalog here yet"):
        store.list_snapshots(load_settings(home=tmp_path / "nothing"))
    assert not (tmp_path / "nothing").exists()


def test_warehouse_that_is_gone(sqlite_settings):
    store.commit(real_records("pud-en-zh.jsonl", 3, "r"), "r", settings=sqlite_settings)
    store.create_tag("v1", settings=sqlite_settings)
    shutil.rmtree(Path(sqlite_settings.home) / "warehouse")
    with pytest.raises(StoreError, match="warehouse is gone"):
        store.load_snapshot("v1", settings=sqlite_settings)
    with pytest.raises(StoreError, match="warehouse is gone"):
        store.commit(real_records("pud-en-zh.jsonl", 1, "r2"), "r2", settings=sqlite_settings)


def test_missing_data_file_in_the_warehouse(sqlite_settings):
    store.commit(real_records("pud-en-zh.jsonl", 3, "r"), "r", settings=sqlite_settings)
    store.create_tag("v1", settings=sqlite_settings)
    for path in data_files(sqlite_settings):
        Path(path).unlink()
    with pytest.raises(StoreError, match="a data file is missing or damaged"):
        store.load_snapshot("v1", settings=sqlite_settings)


def test_unreachable_catalog_never_shows_the_password(tmp_path):
    s = load_settings(home=tmp_path, catalog_uri="postgresql+psycopg2://u:s3cretpw@127.0.0.1:1/db")
    with pytest.raises(StoreError) as err:
        store.commit(real_records("pud-en-zh.jsonl", 1, "r"), "r", settings=s)
    assert "cannot open the dataset catalog" in str(err.value)
    assert "s3cretpw" not in str(err.value)
    assert "s3cretpw" not in json.dumps(s.masked())


@pytest.mark.parametrize(
    "uri,shown",
    [
        ("s3://AKIAEXAMPLE:wJalrXUtnFEMI@bucket/wh", "s3://***@bucket/wh"),
        ("s3://minio:s3cretpw@127.0.0.1:9000/wh", "s3://***@127.0.0.1:9000/wh"),
        ("s3://bucket/wh", "s3://bucket/wh"),
        ("s3://u:s3cretpw@host:notaport/wh", "warehouse (PARALLELNER_WAREHOUSE)"),
    ],
)
def test_a_warehouse_uri_with_credentials_is_shown_without_them(uri, shown):
    from parallelner.store.catalog import redact_location

    assert redact_location(uri) == shown


def test_a_gone_warehouse_message_never_shows_its_credentials(sqlite_settings):
    store.commit(real_records("pud-en-zh.jsonl", 2, "r"), "r", settings=sqlite_settings)
    wh = Path(sqlite_settings.home) / "warehouse"
    shutil.rmtree(wh)
    # the catalog keeps the table's own metadata path; the message names the warehouse
    s = sqlite_settings.model_copy(update={"warehouse": f"file://user:s3cretpw@localhost{wh}"})
    with pytest.raises(StoreError) as err:
        store.load_snapshot("main", settings=s)
    assert "the warehouse is gone" in str(err.value)
    assert "s3cretpw" not in str(err.value) and "***@localhost" in str(err.value)


def test_hf_dataset_path(sqlite_settings):
    # `datasets` comes with the train extra that `make test` installs: a missing package
    # fails here instead of quietly testing the error path
    import datasets

    store.commit(real_records("pud-en-zh.jsonl", 4, "r"), "r", settings=sqlite_settings)
    dd = store.to_hf_dataset("main", status=None, splits="train=1", settings=sqlite_settings)
    assert isinstance(dd, datasets.DatasetDict) and list(dd) == ["train"]
    ds = dd["train"]
    assert len(ds) == 4 and ds[0]["src_lang"] == "en"
    assert ds[1]["record_id"] == "pud-00001-zh"
    assert ds[1]["scores"] == [{"key": "chrf", "value": 41.0}, {"key": "projection", "value": 0.9}]
    assert ds[1]["tgt_entities"][0]["text"] == "國會山"
    labels = ds.features["tgt_entities"].feature["label"]
    assert labels.int2str(ds[1]["tgt_entities"][0]["label"]) == "LOC"


def test_hf_dataset_without_the_datasets_package_is_a_clear_error(sqlite_settings, monkeypatch):
    from parallelner.errors import ConfigError

    store.commit(real_records("pud-en-zh.jsonl", 2, "r"), "r", settings=sqlite_settings)
    monkeypatch.setitem(sys.modules, "datasets", None)  # `import datasets` raises ImportError
    with pytest.raises(ConfigError, match="datasets` is not installed"):
        store.to_hf_dataset("main", settings=sqlite_settings)


def test_unwritable_warehouse_commits_nothing(sqlite_settings):
    # a plain file where the data directory must go: every data write fails (even as root)
    table_dir = Path(sqlite_settings.home) / "warehouse" / "parallelner" / "records"
    table_dir.mkdir(parents=True)
    (table_dir / "data").write_text("in the way")
    with pytest.raises(StoreError, match="cannot write to the warehouse .*nothing was committed"):
        store.commit(real_records("pud-en-zh.jsonl", 2, "r"), "r", settings=sqlite_settings)
    with store.table.reading(sqlite_settings) as table:
        assert table.current_snapshot() is None


def test_warehouse_that_cannot_be_created(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    s = load_settings(home=tmp_path / "home", warehouse=str(blocker / "wh"))
    with pytest.raises(StoreError, match="wh: cannot create the warehouse directory"):
        store.commit(real_records("pud-en-zh.jsonl", 2, "r"), "r", settings=s)


def test_a_table_made_before_entity_verification_gains_its_fields(sqlite_settings):
    """A catalog written by the version before the entity-verification fields: it opens,
    evolves, takes new rows, and its old snapshot still reads (new fields null/empty)."""
    from parallelner.store.catalog import open_catalog
    from parallelner.store.table import NAMESPACE, TABLE_NAME

    new = ("back_translation", "roundtrip_score", "checks")
    schema = arrow_schema()
    ent = schema.field("tgt_entities").type.value_type
    old_ent = pa.struct([f for f in ent if f.name not in new])
    old_schema = schema.set(
        schema.get_field_index("tgt_entities"),
        pa.field("tgt_entities", pa.list_(pa.field("item", old_ent, nullable=False)), False),
    )
    catalog = open_catalog(sqlite_settings, create=True)
    catalog.create_namespace(NAMESPACE)
    table = catalog.create_table(TABLE_NAME, schema=old_schema)
    old_rows = real_records("europarl-en-de.jsonl", 5, "run-old")
    data = pa.Table.from_pylist(
        [
            {
                **r.model_dump(mode="python"),
                "scores": list(r.scores.items()),
                "tgt_entities": [
                    {k: v for k, v in e.model_dump(mode="python").items() if k not in new}
                    for e in r.tgt_entities
                ],
            }
            for r in old_rows
        ],
        schema=old_schema,
    )
    table.append(data)
    old_snapshot = table.current_snapshot().snapshot_id
    catalog.engine.dispose()
    # a reader leaves the table as it is and reads the new fields as null
    assert by_id(table_to_records(store.load_snapshot("main", settings=sqlite_settings))) == (
        by_id(old_rows)
    )
    catalog = open_catalog(sqlite_settings)
    assert "checks" not in str(catalog.load_table(TABLE_NAME).schema())
    catalog.engine.dispose()

    fresh = real_records("europarl-en-de.jsonl", 5, "run-new", offset=5)
    fresh = [
        r.model_copy(
            update={
                "tgt_entities": tuple(
                    e.model_copy(update={"back_translation": "x", "roundtrip_score": 0.5,
                                         "checks": (Reason.ENTITY_ROUNDTRIP,)})
                    for e in r.tgt_entities
                )
            }
        )
        for r in fresh
    ]  # fmt: skip
    sid = store.commit(fresh, "run-new", settings=sqlite_settings)
    got = by_id(table_to_records(store.load_snapshot(sid, settings=sqlite_settings)))
    assert got == by_id(old_rows + fresh)
    before = table_to_records(store.load_snapshot(old_snapshot, settings=sqlite_settings))
    assert by_id(before) == by_id(old_rows)


@pytest.mark.parametrize("how", ["moved", "copied"])
def test_a_moved_or_copied_home_is_refused_in_one_line(tmp_path, how):
    """Issue 25 case 11: Iceberg keeps absolute paths, so a home is not relocatable. A
    copied home used to write into the original; a moved one said only "the warehouse is
    gone". Both are now refused, naming where the table lives; the original is untouched."""
    import shutil

    original = tmp_path / "home"
    settings = load_settings(home=original)
    store.commit(real_records("pud-en-zh.jsonl", 3, "run-1"), "run-1", settings=settings)
    other = tmp_path / "elsewhere"
    if how == "moved":
        shutil.move(original, other)
    else:
        shutil.copytree(original, other)
    there = load_settings(home=other)
    with pytest.raises(StoreError, match="moved or copied.*not relocatable"):
        store.commit(real_records("pud-en-zh.jsonl", 6, "run-2")[3:], "run-2", settings=there)
    with pytest.raises(StoreError, match="moved or copied"):
        store.load_snapshot("main", settings=there)
    from parallelner import pipeline
    from tests.flows.helpers import WIKINEURAL_SAMPLE

    with pytest.raises(StoreError, match="moved or copied"):  # a run: before any work
        pipeline.plan_run([WIKINEURAL_SAMPLE], "zh", there)
    if how == "copied":  # nothing was written into the original
        assert [s["run_id"] for s in store.list_snapshots(settings)] == ["run-1"]
