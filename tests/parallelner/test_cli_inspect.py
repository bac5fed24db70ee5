"""`parallelner inspect`, run as the installed console script (as the README shows it)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from test_readers import count_cluener_plainly, count_wikineural_plainly

REPO = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).parent / "parallelner")
BAD = Path("tests") / "data" / "bad"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, "inspect", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": str(Path(sys.executable).parent), "COLUMNS": "200"},
    )


def test_inspect_wikineural_val_json_reports_counts_and_repairs():
    res = run("data/sources/wikineural-en-val.conllu", "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["format"] == "wikineural"
    sentences, entities, orphans = count_wikineural_plainly(REPO / out["path"])
    assert out["sentences"] == sentences == 11_590
    assert out["entities_by_label"] == dict(sorted(entities.items()))  # counted independently
    assert out["repaired_by_reason"] == {"orphan_inside_tag": orphans} == {"orphan_inside_tag": 439}
    assert out["quarantined"] == 0
    assert out["repaired_examples"][0]["where"] == "data/sources/wikineural-en-val.conllu:1197"


def test_inspect_cluener_train_prints_a_table():
    res = run("data/sources/cluener-train.json", "--format", "cluener")
    assert res.returncode == 0, res.stderr
    path = REPO / "data" / "sources" / "cluener-train.json"
    sentences, entities = count_cluener_plainly(path)
    # lines whose spans overlap (a company nested in a book title) are quarantined
    for line in path.read_text(encoding="utf-8").splitlines():
        labels = json.loads(line).get("label", {}) if line.strip() else {}
        spans = sorted(
            (s, e, typ) for typ, ms in labels.items() for ss in ms.values() for s, e in ss
        )
        if any(b[0] <= a[1] for a, b in zip(spans, spans[1:], strict=False)):
            sentences -= 1
            entities.subtract(Counter(typ for _, _, typ in spans))
    entities = +entities
    assert f"{sentences:,}" in res.stdout and f"{sum(entities.values()):,}" in res.stdout
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip()
            for line in res.stdout.splitlines() if line.count("│") == 3}  # fmt: skip
    for label, n in entities.items():
        assert rows[label] == f"{n:,}", label


def test_inspect_quarantines_bad_lines_and_exits_zero(tmp_path):
    qfile = tmp_path / "q.jsonl"
    res = run(str(BAD / "mention-mismatch.json"), "--quarantine", str(qfile))
    assert res.returncode == 0, res.stderr
    assert "quarantined" in res.stdout and "mention_mismatch" in res.stdout
    assert f"{BAD / 'mention-mismatch.json'}:2:" in res.stdout
    (row,) = [json.loads(x) for x in qfile.read_text(encoding="utf-8").splitlines()]
    assert row["line"] == 2 and row["reason"] == "mention_mismatch"


@pytest.mark.parametrize(
    ("name", "line", "fault"),
    [
        ("unknown-tag.conllu", 10, "unknown tag 'X-ORG'"),
        ("orphan-inside.conllu", 16, "I-PER follows O, not B-PER"),
        ("invalid-utf8.json", 2, "invalid UTF-8"),
        ("offset-out-of-range.jsonl", 2, "outside the text"),
    ],
)
def test_inspect_strict_stops_with_one_line_and_exit_2(name, line, fault):
    res = run(str(BAD / name), "--strict")
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    (msg,) = res.stderr.strip().splitlines()
    assert f"{BAD / name}:{line}: " in msg and fault in msg


def test_inspect_unreadable_file_exits_2_with_one_line():
    res = run("no/such/file.conllu", "--format", "wikineural")
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    assert "no/such/file.conllu: cannot read: No such file or directory" in res.stderr


@pytest.mark.parametrize("where", ["a-directory", "a-file/q.jsonl"])
def test_inspect_quarantine_path_that_cannot_be_written_is_one_line(tmp_path, where):
    (tmp_path / "a-directory").mkdir()
    (tmp_path / "a-file").write_text("x", encoding="utf-8")
    res = run(str(BAD / "mention-mismatch.json"), "--quarantine", str(tmp_path / where))
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    (msg,) = res.stderr.strip().splitlines()
    assert f"{tmp_path / where}: " in msg
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_inspect_help_explains_formats_and_exit_codes():
    res = run("--help")
    assert res.returncode == 0
    for word in ("--format", "--strict", "--quarantine", "--json", "wikineural", "Exit 0"):
        assert word in res.stdout
    assert "parallelner inspect data/sources/wikineural-en-val.conllu" in res.stdout  # an example
