"""Instruction data: both tasks, both sides and directions, schema sampling, split, manifest."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from parallelner.errors import InputError
from parallelner.reasons import Status
from parallelner.records import Entity
from parallelner.testing.samples import records_from_projection_gold
from schemas.ontology import parent_chain
from schemas.parse import parse_results
from tests.training.conftest import BUILD, EUROPARL_DE, PUD
from training.build import build_examples, build_from_records, read_examples
from training.config import BuildConfig
from training.errors import TrainingDataError
from training.instructions import split_of


def test_every_pair_gives_ner_on_both_sides_and_alignment_both_ways(gold_records):
    examples, counts = build_examples(gold_records, BUILD)
    per_record = Counter((e.record_id, e.task, e.src_lang, e.lang) for e in examples)
    for r in gold_records:
        assert per_record[(r.record_id, "ner", None, "en")] == 1
        assert per_record[(r.record_id, "ner", None, "zh")] == 1
        assert per_record[(r.record_id, "alignment", "en", "zh")] == 1
        assert per_record[(r.record_id, "alignment", "zh", "en")] == 1
    assert len(examples) == 4 * len(gold_records)
    assert counts["records"] == {
        "read": 40,
        "by_status": {"accepted": 40},
        "used": 40,
        "without_target": 0,
    }


def test_alignment_answer_is_the_target_side_in_the_sentence_order(gold_records):
    record = gold_records[
        0
    ]  # "United States", "Obama", "Kori Schulman" -> 美國, 奧巴馬, 科瑞·舒爾曼
    examples, _ = build_examples([record], BUILD)
    en_zh = next(e for e in examples if e.task == "alignment" and e.lang == "zh")
    assert en_zh.completion == (
        'results = [Location("美國"), Person("奧巴馬"), Person("科瑞·舒爾曼")]'
    )
    assert (
        'source_results = [Location("United States"), Organization("Obama"), '
        'Person("Kori Schulman")]' in en_zh.prompt
    )
    assert en_zh.prompt.rstrip().endswith(
        f'target_sentence = "{record.tgt_text.replace(chr(34), chr(92) + chr(34))}"'
    )
    zh_en = next(e for e in examples if e.task == "alignment" and e.lang == "en")
    assert zh_en.gold == (
        ("Location", "United States"),
        ("Organization", "Obama"),
        ("Person", "Kori Schulman"),
    )


def test_completions_parse_back_to_the_gold(gold_records):
    examples, _ = build_examples(gold_records, BUILD)
    for e in examples:
        parsed = parse_results(e.completion)
        assert parsed.ok, (e.id, parsed.problems)
        assert tuple(parsed.entities) == e.gold


def test_schema_sampling_adds_unrelated_negatives_and_teaches_empty_results(gold_records):
    cfg = BuildConfig(positive_keep=0.5, negatives=2, max_classes=6, seed=3)
    examples, counts = build_examples(gold_records, cfg)
    ner = [e for e in examples if e.task == "ner"]
    empty = [e for e in ner if e.completion == "results = []"]
    assert empty and counts["empty_answers"] >= len(empty)
    for e in ner:
        gold_classes = {c for c, _ in e.gold}
        # every shown class appears in the prompt as a class definition
        for c in e.classes:
            assert f"class {c}(" in e.prompt
        assert len(e.classes) <= cfg.max_classes
        # the answer only names shown classes; dropped classes' mentions leave the answer
        assert gold_classes <= set(e.classes)
        negatives = set(e.classes) - gold_classes
        assert negatives, e.id
        inst_classes = {c for c, _ in e.gold}
        for neg in negatives:
            for g in inst_classes:
                assert neg not in parent_chain(g) and g not in parent_chain(neg)


def test_schema_sampling_is_deterministic_per_seed(gold_records):
    a, _ = build_examples(gold_records, BuildConfig(seed=1))
    b, _ = build_examples(gold_records, BuildConfig(seed=1))
    c, _ = build_examples(gold_records, BuildConfig(seed=2))
    assert [e.prompt for e in a] == [e.prompt for e in b]
    assert [e.classes for e in a] != [e.classes for e in c]


def test_split_keeps_all_examples_of_one_instance_on_one_side():
    # two records of the same source instance (en->zh and en->de) must split together
    zh = records_from_projection_gold(PUD, limit=60)
    de = records_from_projection_gold(EUROPARL_DE, limit=60)
    cfg = BuildConfig(dev_ratio=0.3, seed=5)
    examples, counts = build_examples(zh + de, cfg)
    sides = {}
    for e in examples:
        sides.setdefault(e.instance_id, set()).add(e.split)
    assert all(len(s) == 1 for s in sides.values())
    assert counts["instances"]["dev"] > 0 and counts["instances"]["train"] > 0
    assert split_of("pud-00000", 0.3, 5) == split_of("pud-00000", 0.3, 5)


def test_mixing_ratios_sample_each_task(gold_records):
    only_alignment, counts = build_examples(
        gold_records, BuildConfig(mix={"ner": 0.0, "alignment": 1.0}, dev_ratio=0.0)
    )
    assert {e.task for e in only_alignment} == {"alignment"}
    doubled, counts2 = build_examples(
        gold_records, BuildConfig(mix={"ner": 2.0, "alignment": 0.5}, dev_ratio=0.0, seed=11)
    )
    assert counts2["examples"]["train"]["ner"] == 4 * len(gold_records)
    half = counts2["examples"]["train"]["alignment"]
    assert 0.25 * 2 * len(gold_records) < half < 0.75 * 2 * len(gold_records)
    assert len({e.id for e in doubled}) == len(doubled)  # copies get distinct ids


def test_dev_examples_are_not_resampled(gold_records):
    examples, counts = build_examples(
        gold_records, BuildConfig(mix={"ner": 0.0, "alignment": 3.0}, dev_ratio=0.3, seed=5)
    )
    dev = [e for e in examples if e.split == "dev"]
    assert Counter(e.task for e in dev) == Counter(
        {"ner": 2 * counts["instances"]["dev"], "alignment": 2 * counts["instances"]["dev"]}
    )


def test_manifest_records_snapshot_counts_and_checksums(tmp_path, gold_records):
    manifest = build_from_records(gold_records, tmp_path / "out", BUILD, snapshot="v-test")
    on_disk = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert on_disk == manifest
    assert manifest["snapshot"] == "v-test"
    train = read_examples(tmp_path / "out" / "train.jsonl")
    dev = read_examples(tmp_path / "out" / "dev.jsonl")
    assert sum(manifest["examples"]["train"].values()) == len(train)
    assert sum(manifest["examples"]["dev"].values()) == len(dev)
    assert len(manifest["files"]["train.jsonl"]) == 64


def test_only_accepted_statuses_are_used(gold_records):
    mixed = [
        r.model_copy(update={"status": Status.REJECTED}) if i % 4 == 0 else r
        for i, r in enumerate(gold_records)
    ]
    examples, counts = build_examples(mixed, BUILD)
    assert counts["records"]["used"] == 30
    assert counts["records"]["by_status"] == {"accepted": 30, "rejected": 10}
    assert len({e.record_id for e in examples}) == 30


def test_no_accepted_pairs_is_refused(gold_records):
    rejected = [r.model_copy(update={"status": Status.REJECTED}) for r in gold_records]
    with pytest.raises(TrainingDataError, match="no accepted pairs"):
        build_examples(rejected, BUILD, source="snapshot v0")


def test_labels_missing_from_the_ontology_are_listed(gold_records):
    r = gold_records[1]
    bad = r.model_copy(
        update={"src_entities": (Entity(start=49, end=61, label="FACILITY", text="Capitol Hill"),)}
    )
    unknown_ds = gold_records[2].model_copy(update={"source_dataset": "mystery"})
    with pytest.raises(TrainingDataError) as err:
        build_examples([bad, unknown_ds, *gold_records[3:]], BUILD, source="snapshot v1")
    msg = str(err.value)
    assert "snapshot v1" in msg and "wikineural:FACILITY (1)" in msg and "mystery:" in msg


def test_output_directory_must_be_empty_and_nothing_half_written(tmp_path, gold_records):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(TrainingDataError, match="not empty"):
        build_from_records(gold_records, out, BUILD)
    with pytest.raises(TrainingDataError):
        build_from_records([], tmp_path / "fresh", BUILD)
    assert not (tmp_path / "fresh").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_bad_instruction_file_names_file_and_line(tmp_path, built):
    lines = (built / "train.jsonl").read_text().splitlines()
    bad = tmp_path / "train.jsonl"
    bad.write_text("\n".join([lines[0], "{not json", lines[1]]) + "\n")
    with pytest.raises(InputError, match=r"train\.jsonl:2: .*\[invalid_json\]"):
        read_examples(bad)
    with pytest.raises(TrainingDataError, match="not found"):
        read_examples(tmp_path / "missing.jsonl")


def test_streamed_build_from_a_record_source_matches_the_in_memory_build(tmp_path, gold_records):
    reads = []

    def source():
        reads.append(1)
        return iter(gold_records)

    manifest = build_from_records(source, tmp_path / "out", BUILD, snapshot="s")
    assert len(reads) == 2  # one pass to check, one to write
    examples, counts = build_examples(gold_records, BUILD)
    assert {k: manifest[k] for k in counts} == counts
    written = read_examples(tmp_path / "out" / "train.jsonl") + read_examples(
        tmp_path / "out" / "dev.jsonl"
    )
    assert sorted(e.id for e in written) == sorted(e.id for e in examples)
