"""Bad input: strict mode stops with ``file:line: fault``; by default it is quarantined.

Every file in tests/data/bad has a good sentence, one sentence with the fault its name
says, and another good sentence (see tests/data/NOTICE.md).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from parallelner.errors import InputError
from parallelner.readers import ReadReport, read_instances
from parallelner.reasons import Reason

BAD = Path(__file__).resolve().parents[2] / "tests" / "data" / "bad"

# file, line of the fault, reason, words the message must contain
CASES = [
    ("malformed-line.conllu", 13, Reason.MALFORMED_LINE, "expected at least 3 columns, found 2"),
    ("unknown-tag.conllu", 10, Reason.UNKNOWN_TAG, "unknown tag 'X-ORG'"),
    ("unknown-label.conllu", 20, Reason.UNKNOWN_LABEL, "unknown label 'CITY'"),
    ("invalid-utf8.conllu", 20, Reason.INVALID_UTF8, "invalid UTF-8 (byte 0xff"),
    ("empty-sentence.conllu", 10, Reason.EMPTY_SENTENCE, "empty sentence"),
    ("invalid-json.json", 2, Reason.INVALID_JSON, "invalid JSON"),
    (
        "malformed-line.json",
        2,
        Reason.MALFORMED_LINE,
        '"label" must be an object: type -> mention -> list of (start, end) pairs',
    ),
    (
        "offset-out-of-range.json",
        2,
        Reason.OFFSET_OUT_OF_RANGE,
        "[15, 24] (end inclusive) is outside the text (length 22)",
    ),
    ("mention-mismatch.json", 2, Reason.MENTION_MISMATCH, "'锡耶纳' span [5, 7] reads 's锡耶'"),
    ("unknown-label.json", 2, Reason.UNKNOWN_LABEL, "unknown label 'club'"),
    ("invalid-utf8.json", 2, Reason.INVALID_UTF8, "invalid UTF-8"),
    ("empty-sentence.json", 2, Reason.EMPTY_SENTENCE, "empty sentence"),
    ("invalid-json.jsonl", 2, Reason.INVALID_JSON, "invalid JSON"),
    (
        "offset-out-of-range.jsonl",
        2,
        Reason.OFFSET_OUT_OF_RANGE,
        "[58, 65) is empty or outside the text (length 61)",
    ),
    (
        "mention-mismatch.jsonl",
        2,
        Reason.MENTION_MISMATCH,
        "'Clinton' does not match the text at [29, 36), which reads ' Clinto'",
    ),
    ("unknown-label.jsonl", 2, Reason.UNKNOWN_LABEL, "unknown label 'POLITICIAN'"),
    ("duplicate-id.jsonl", 2, Reason.DUPLICATE_ID, "'pud-00003' appears earlier"),
    ("empty-sentence.jsonl", 2, Reason.EMPTY_SENTENCE, "empty sentence"),
    (
        "overlapping-entities.jsonl",
        2,
        Reason.OVERLAPPING_ENTITIES,
        "entity ORG 'Clinton ’' [30, 39) contains PER 'Clinton' [30, 37)",
    ),
    (
        "overlapping-entities.json",
        2,
        Reason.OVERLAPPING_ENTITIES,
        "entity organization '那不勒斯' [0, 4) contains address '那不勒' [0, 3)",
    ),
    ("unknown-language.jsonl", 2, Reason.UNKNOWN_LANGUAGE, "unknown language 'klingon'"),
]


@pytest.mark.parametrize(("name", "line", "reason", "fault"), CASES, ids=[c[0] for c in CASES])
def test_strict_mode_stops_with_file_line_and_fault(name, line, reason, fault):
    path = BAD / name
    with pytest.raises(InputError) as err:
        list(read_instances(path, strict=True))
    message = str(err.value)
    assert message.startswith(f"{path}:{line}: ")
    assert fault in message
    assert err.value.reason is reason and err.value.line == line


@pytest.mark.parametrize(("name", "line", "reason", "fault"), CASES, ids=[c[0] for c in CASES])
def test_default_mode_quarantines_and_reads_on(name, line, reason, fault):
    path = BAD / name
    report = ReadReport()
    quarantined = []
    kept = list(read_instances(path, report=report, quarantine=quarantined.append))
    assert len(kept) == 2  # the good sentences before and after
    (q,) = quarantined
    assert (q.path, q.line, q.reason) == (str(path), line, reason)
    assert fault in q.detail and q.raw
    assert report.quarantined == {reason.value: 1} and report.sentences == 2


def test_orphan_inside_tag_is_repaired_by_default_and_counted():
    path = BAD / "orphan-inside.conllu"
    report = ReadReport()
    kept = list(read_instances(path, report=report))
    assert len(kept) == 3 and report.quarantined_total == 0
    assert report.repaired == {"orphan_inside_tag": 1}
    assert report.repaired_examples[0].line == 16
    middle = kept[1]
    # I-PER I-PER after O reads as one entity, like conlleval
    assert [(e.text, e.label) for e in middle.entities] == [
        ("April Ferry", "PER"),
        ("Neeta Lulla", "PER"),
    ]


def test_orphan_inside_tag_stops_strict_mode_with_file_line_and_fault():
    path = BAD / "orphan-inside.conllu"
    with pytest.raises(InputError) as err:
        list(read_instances(path, strict=True))
    assert str(err.value).startswith(f"{path}:16: I-PER follows O, not B-PER")
    assert err.value.reason is Reason.ORPHAN_INSIDE_TAG


def test_a_missing_file_is_an_input_error_naming_it(tmp_path):
    missing = tmp_path / "nope.conllu"
    with pytest.raises(InputError, match=r"nope\.conllu: cannot read: No such file"):
        list(read_instances(missing, "wikineural"))


def test_a_file_that_is_not_parquet_is_an_input_error(tmp_path):
    fake = tmp_path / "fake.parquet"
    fake.write_text("not parquet\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"fake\.parquet: not a readable Parquet file"):
        list(read_instances(fake, "parquet"))


def test_a_parquet_name_without_parquet_content_is_read_as_parquet_and_refused(tmp_path):
    # format detection trusts the name over line guessing: the error says what is wrong
    fake = tmp_path / "fake.parquet"
    fake.write_text("not parquet\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"fake\.parquet: not a readable Parquet file"):
        list(read_instances(fake))


def test_a_non_string_lang_is_named_as_such(tmp_path):
    path = tmp_path / "lang.jsonl"
    path.write_text('{"id": "a", "lang": 7, "text": "Hello Bob"}\n', encoding="utf-8")
    with pytest.raises(InputError) as err:
        list(read_instances(path, "jsonl", strict=True))
    assert str(err.value).startswith(f"{path}:1: ")
    assert '"lang" must be a string, found 7' in str(err.value)


@pytest.mark.parametrize("fmt", ["jsonl", "cluener", "conll"])
def test_a_sentence_over_the_cap_is_quarantined_not_read(fmt, tmp_path):
    # a 5 MB "sentence" (a document pasted into one line) must never reach the LLM
    good = "Alice Smith lives in Paris ."
    long = "word " * 1_000_000
    if fmt == "jsonl":
        rows = [{"id": str(i), "lang": "en", "text": t, "entities": []} for i, t in
                enumerate([good, long, good])]  # fmt: skip
        path = tmp_path / "s.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif fmt == "cluener":
        path = tmp_path / "s.json"
        path.write_text(
            "".join(json.dumps({"text": t}) + "\n" for t in ("你好。", "字" * 5_000_001, "再见。"))
        )
    else:
        path = tmp_path / "s.conll"
        tokens = ["A"] * 12 + ["."]
        block = lambda toks: "".join(f"{t}\tO\n" for t in toks) + "\n"  # noqa: E731
        path.write_text(block(tokens) + block(["word"] * 1_000_000) + block(tokens))
    quarantined = []
    kept = list(read_instances(path, fmt, quarantine=quarantined.append))
    assert len(kept) == 2
    (q,) = quarantined
    assert q.reason is Reason.SENTENCE_TOO_LONG and q.line is not None
    assert "more than the cap of 5000" in q.detail
    assert len(q.raw) < 10_000  # the quarantine file keeps a bounded excerpt
    with pytest.raises(InputError, match="sentence_too_long"):
        list(read_instances(path, fmt, strict=True))


def test_a_directory_is_reported_as_a_directory(tmp_path):
    with pytest.raises(InputError, match="is a directory, not a file"):
        list(read_instances(tmp_path))
