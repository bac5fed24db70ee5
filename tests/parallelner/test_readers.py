"""Readers on the real corpora: counts against an independent count, ids, round trips."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parallelner.readers import ReadReport, detect_format, read_instances
from parallelner.records import Entity, Instance
from parallelner.writers import QuarantineWriter, write_parquet, write_span_jsonl

REPO = Path(__file__).resolve().parents[2]
WIKINEURAL = REPO / "data" / "sources" / "wikineural-en-val.conllu"
CLUENER_TRAIN = REPO / "data" / "sources" / "cluener-train.json"
TESTDATA = REPO / "tests" / "data"


def count_wikineural_plainly(path: Path) -> tuple[int, Counter[str], int]:
    """Sentences, entities per type and orphan I- tags, counted straight from the tag column.

    An entity starts at every B- tag and at every I- tag whose previous tag in the
    sentence is O or of another type (conlleval's reading).
    """
    sentences, entities, orphans = 0, Counter(), 0
    prev, in_sentence = "O", False
    for line in path.read_text(encoding="utf-8").split("\n"):
        if not line.strip():
            sentences += in_sentence
            prev, in_sentence = "O", False
            continue
        tag = line.split("\t")[2]
        in_sentence = True
        if tag.startswith("B-"):
            entities[tag[2:]] += 1
        elif tag.startswith("I-") and prev[2:] != tag[2:]:
            entities[tag[2:]] += 1
            orphans += 1
        prev = tag
    return sentences + in_sentence, entities, orphans


def count_cluener_plainly(path: Path) -> tuple[int, Counter[str]]:
    """Sentences and mentions per type, counted from the raw label dicts."""
    sentences, entities = 0, Counter()
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            sentences += 1
            for typ, mentions in json.loads(line).get("label", {}).items():
                entities[typ] += sum(len(spans) for spans in mentions.values())
    return sentences, entities


def test_wikineural_val_counts_match_an_independent_count():
    report = ReadReport()
    instances = list(read_instances(WIKINEURAL, report=report))
    sentences, entities, orphans = count_wikineural_plainly(WIKINEURAL)
    assert (sentences, orphans) == (11_590, 439)
    assert report.format == "wikineural"
    assert report.sentences == len(instances) == sentences
    assert report.entities == entities
    assert Counter(e.label for i in instances for e in i.entities) == entities
    assert report.repaired == {"orphan_inside_tag": orphans}
    assert report.quarantined_total == 0


def test_cluener_train_counts_match_an_independent_count():
    report = ReadReport()
    quarantined = []
    instances = list(
        read_instances(CLUENER_TRAIN, "cluener", report=report, quarantine=quarantined.append)
    )
    sentences, entities = count_cluener_plainly(CLUENER_TRAIN)
    assert sentences == 10_748
    # one real line nests a company inside a book title: one span per character is the
    # contract after reading, so it is quarantined (with its 3 entities), not read
    (nested,) = quarantined
    assert (nested.line, nested.reason) == (1507, "overlapping_entities")
    assert "'招商银行' [16, 20) is nested in book" in nested.detail
    assert report.sentences == len(instances) == sentences - 1
    entities.subtract({"book": 1, "company": 2})
    assert report.entities == +entities
    assert report.quarantined_total == 1 and report.repaired_total == 0
    assert all(i.lang == "zh" and i.source_dataset == "cluener" for i in instances)


def test_wikineural_entity_spans_cover_exactly_their_tokens():
    blocks = [b for b in WIKINEURAL.read_text(encoding="utf-8").split("\n\n") if b.strip()]
    instances = list(read_instances(WIKINEURAL))
    assert len(blocks) == len(instances)
    for block, inst in zip(blocks, instances, strict=True):
        rows = [line.split("\t") for line in block.split("\n")]
        # the text is the tokens plus single spaces, nothing else
        assert inst.text.replace(" ", "") == "".join(r[1] for r in rows)
        for e in inst.entities:
            assert inst.text[e.start : e.end] == e.text
            assert e.text == e.text.strip()


def test_wikineural_text_is_readable_english():
    first = next(iter(read_instances(WIKINEURAL)))
    assert first.text == (
        "Her visit to Tuvalu was cut short by an illness, which may have been viral "
        "pneumonia, and she was flown to Australia to recuperate."
    )
    assert [(e.text, e.label, e.start) for e in first.entities] == [
        ("Tuvalu", "LOC", 13),
        ("Australia", "LOC", 107),
    ]


def test_cluener_inclusive_end_becomes_exclusive_and_repeated_mentions_are_kept(tmp_path):
    text = "布鲁京斯研究所桑顿中国中心研究部主任李成说，李成认为美国很重要。"
    line = {
        "text": text,
        "label": {"name": {"李成": [[18, 19], [22, 23]]}, "address": {"美国": [[26, 27]]}},
    }
    path = tmp_path / "repeat.json"
    path.write_text(json.dumps(line, ensure_ascii=False) + "\n", encoding="utf-8")
    (inst,) = read_instances(path, "cluener")
    assert [(e.start, e.end, e.text, e.label) for e in inst.entities] == [
        (18, 20, "李成", "name"),
        (22, 24, "李成", "name"),
        (26, 28, "美国", "address"),
    ]


def test_ids_are_deterministic_and_name_dataset_file_and_position():
    a = [i.id for i in read_instances(TESTDATA / "wikineural-en-val-head.conllu")]
    b = [i.id for i in read_instances(TESTDATA / "wikineural-en-val-head.conllu")]
    assert a == b and len(set(a)) == len(a) == 46
    assert a[0] == "wikineural-wikineural-en-val-head-1"
    c = [i.id for i in read_instances(TESTDATA / "cluener-train-head.json")]
    assert c[:2] == ["cluener-cluener-train-head-1", "cluener-cluener-train-head-2"]


def test_quarantined_sentence_keeps_the_ids_of_the_following_ones():
    ids = [i.id for i in read_instances(TESTDATA / "bad" / "unknown-tag.conllu")]
    assert ids == ["wikineural-unknown-tag-1", "wikineural-unknown-tag-3"]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (WIKINEURAL, "wikineural"),
        (CLUENER_TRAIN, "cluener"),
        (TESTDATA / "bad" / "duplicate-id.jsonl", "jsonl"),
    ],
)
def test_format_is_detected_from_content(path, expected):
    assert detect_format(path) == expected


def test_format_detection_ignores_a_misleading_extension(tmp_path):
    disguised = tmp_path / "corpus.txt"
    disguised.write_bytes((TESTDATA / "cluener-train-head.json").read_bytes())
    assert detect_format(disguised) == "cluener"
    pq_file = tmp_path / "instances.data"
    write_parquet(read_instances(TESTDATA / "cluener-train-head.json"), pq_file)
    assert detect_format(pq_file) == "parquet"


@pytest.mark.parametrize("source", ["wikineural-en-val-head.conllu", "cluener-train-head.json"])
def test_span_jsonl_and_parquet_round_trip_losslessly(tmp_path, source):
    original = list(read_instances(TESTDATA / source))
    assert write_span_jsonl(original, tmp_path / "out.jsonl") == len(original)
    assert write_parquet(original, tmp_path / "out.parquet", batch_size=7) == len(original)
    assert list(read_instances(tmp_path / "out.jsonl")) == original
    assert list(read_instances(tmp_path / "out.parquet", batch_size=5)) == original


def test_span_jsonl_without_dataset_checks_labels_against_the_ontology(tmp_path):
    good = {
        "id": "a",
        "lang": "de",
        "text": "Angela Merkel sprach in Berlin.",
        "entities": [
            {"start": 0, "end": 13, "label": "Person"},
            {"start": 24, "end": 30, "label": "GeopoliticalEntity"},
        ],
    }
    bad = dict(good, id="b", entities=[{"start": 0, "end": 13, "label": "HERO"}])
    # CoNLL tags without a dataset are read as dataset "conll" (issue 15)...
    conll = dict(good, id="c", entities=[{"start": 0, "end": 13, "label": "PER"}])
    # ...but not mixed with ontology names in one record
    mixed = dict(good, id="d", entities=[{"start": 0, "end": 13, "label": "PER"},
                                         {"start": 24, "end": 30, "label": "GeopoliticalEntity"}])  # fmt: skip
    path = tmp_path / "ontology.jsonl"
    lines = (good, bad, conll, mixed)
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    report = ReadReport()
    got = list(read_instances(path, report=report))
    assert [i.id for i in got] == ["a", "c"] and got[0].entities[0].text == "Angela Merkel"
    assert got[0].source_dataset == "" and got[1].source_dataset == "conll"
    assert report.quarantined == {"unknown_label": 2}


def test_parquet_rows_are_validated_like_jsonl_lines(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from parallelner.records import arrow_schema

    rows = [
        {
            "id": "ok",
            "lang": "en",
            "text": "Paris is big",
            "source_dataset": "conll",
            "entities": [{"start": 0, "end": 5, "label": "LOC", "text": "Paris"}],
        },
        {
            "id": "bad",
            "lang": "en",
            "text": "Paris is big",
            "source_dataset": "conll",
            "entities": [{"start": 1, "end": 6, "label": "LOC", "text": "Paris"}],
        },
    ]
    pq.write_table(
        pa.Table.from_pylist(rows, schema=arrow_schema(Instance)), tmp_path / "x.parquet"
    )
    report = ReadReport()
    assert [i.id for i in read_instances(tmp_path / "x.parquet", report=report)] == ["ok"]
    assert report.quarantined == {"mention_mismatch": 1}
    assert report.quarantined_examples[0].where.endswith("x.parquet:2")


def test_quarantine_writer_keeps_path_line_reason_detail_and_raw(tmp_path):
    bad = TESTDATA / "bad" / "mention-mismatch.json"
    with QuarantineWriter(tmp_path / "q.jsonl") as sink:
        kept = list(read_instances(bad, quarantine=sink.write))
    assert len(kept) == 2
    (row,) = [
        json.loads(x) for x in (tmp_path / "q.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert row["path"] == str(bad) and row["line"] == 2 and row["reason"] == "mention_mismatch"
    assert "锡耶纳" in row["detail"]
    assert row["raw"] == bad.read_text(encoding="utf-8").splitlines()[1]


@st.composite
def instances(draw):
    """Instances with arbitrary unicode text (emoji, CJK Ext. B, line separators) and spans."""
    text = draw(st.text(st.characters(codec="utf-8"), min_size=1, max_size=40).filter(str.strip))
    cuts = sorted(draw(st.lists(st.integers(0, len(text)), max_size=6, unique=True)))
    entities = []
    for start, end in zip(cuts[::2], cuts[1::2], strict=False):  # odd cut: unused
        label = draw(st.sampled_from(["PER", "ORG", "LOC", "MISC"]))
        entities.append(Entity(start=start, end=end, label=label, text=text[start:end]))
    n = draw(st.integers(0, 10**6))
    return Instance(
        id=f"x-{n}", lang="en", text=text, entities=tuple(entities), source_dataset="conll"
    )


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(instances(), max_size=5, unique_by=lambda i: i.id),
    st.sampled_from(["😀𠀋\u2028\x85\r", "𠀀 \u3000"]),
)
def test_writers_and_readers_round_trip_any_unicode(tmp_path, batch, extra):
    batch = [i.model_copy(update={"text": i.text + extra}) for i in batch]
    write_span_jsonl(batch, tmp_path / "p.jsonl")
    write_parquet(batch, tmp_path / "p.parquet")
    assert list(read_instances(tmp_path / "p.jsonl", "jsonl")) == batch
    assert list(read_instances(tmp_path / "p.parquet", "parquet")) == batch
