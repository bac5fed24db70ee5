"""`parallelner project` on real dev lines, good and broken (--llm none)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from parallelner.errors import InputError
from parallelner.jobs.project import known_labels, run_project
from parallelner_cli import main

DEV = Path(__file__).resolve().parents[2] / "data" / "projection-dev"


def dev_line(name: str, line: int) -> dict:
    with open(DEV / f"{name}.jsonl", encoding="utf-8") as fh:
        for i, raw in enumerate(fh, 1):
            if i == line:
                return json.loads(raw)
    raise LookupError(line)


def cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """Run the real console entry point in-process; (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["parallelner", *map(str, args)])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code or 0
    out, err = capsys.readouterr()
    return code, out, err


def with_(d: dict, **changes) -> dict:
    d = json.loads(json.dumps(d))
    for path, value in changes.items():
        *head, last = path.split("__")
        node = d
        for key in head:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return d


GOOD = dev_line("europarl-en-de", 1)
ES28 = dev_line("europarl-en-es", 28)
PUD = dev_line("pud-en-zh", 66)

# (name, raw input line, reason expected on that output line)
BAD_LINES = [
    ("invalid-json", json.dumps(GOOD)[:-7], "invalid_json"),
    ("not-an-object", "[1, 2]", "invalid_json"),
    ("blank-line", "", "malformed_line"),
    ("missing-target", json.dumps({"id": "x", "source": GOOD["source"]}), "malformed_line"),
    ("empty-target", json.dumps(with_(GOOD, target__text="")), "empty_target"),
    ("offsets-outside-text",
     json.dumps(with_(GOOD, source__entities__0={"start": 37, "end": 999, "label": "ORG"})),
     "invalid_source_entity"),
    ("offsets-mismatch-text",
     json.dumps(with_(GOOD, source__entities__0={"start": 36, "end": 55, "label": "ORG",
                                                 "text": "European Parliament"})),
     "invalid_source_entity"),
    ("unknown-label", json.dumps(with_(GOOD, source__entities__0__label="PERSONA")),
     "unknown_label"),
    ("target-in-wrong-script",
     json.dumps(with_(PUD, target__text=PUD["source"]["text"])), "unexpected_script"),
    ("mention-zero-times", json.dumps(PUD), "not_found"),
    ("mention-many-times",
     json.dumps(with_(ES28, source__entities=ES28["source"]["entities"][3:])), "ambiguous"),
    ("mention-longer-than-sentence", json.dumps(with_(GOOD, target__text="Ja .")),
     "mention_too_long"),
]  # fmt: skip


def test_every_bad_line_gets_its_reason_and_one_output_line_each(tmp_path, monkeypatch, capsys):
    lines = [json.dumps({**GOOD, "meta": {"keep": [1, 2]}})] + [raw for _, raw, _ in BAD_LINES]
    src = tmp_path / "in.jsonl"
    src.write_bytes(("\n".join(lines) + "\n").encode() + b'{"id": "\xff\xfe"}\n')
    out = tmp_path / "out.jsonl"
    code, stdout, err = cli(monkeypatch, capsys, "project", src, "-o", out, "--llm", "none",
                            "--json")  # fmt: skip
    assert code == 0, err
    rows = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == len(lines) + 1
    good = rows[0]
    assert good["meta"] == {"keep": [1, 2]} and good["gold"] == GOOD["gold"]
    assert good["target"]["entities"] == [
        {"start": 80, "end": 103, "label": "ORG", "text": "Europäischen Parlaments",
         "score": good["target"]["entities"][0]["score"], "method": "fuzzy", "source_index": 0}
    ]  # fmt: skip
    assert good["unprojected"] == [] and good["reasons"] == []
    for (name, _, reason), row in zip(BAD_LINES, rows[1:], strict=False):
        assert reason in row["reasons"], (name, row)
    assert rows[-1]["reasons"] == ["invalid_utf8"]
    assert rows[-1]["raw"].startswith('{"id": "')
    summary = json.loads(stdout)
    assert summary["lines"] == len(rows)
    assert summary["reasons"]["invalid_json"] == 2
    assert summary["methods"]["fuzzy"] >= 1


def test_unknown_label_leaves_the_other_entities_projected(tmp_path, monkeypatch, capsys):
    d = with_(ES28, source__entities__1__label="NATION")
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps(d) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    code, _, err = cli(monkeypatch, capsys, "project", src, "-o", out, "--llm", "none")
    assert code == 0, err
    row = json.loads(out.read_text(encoding="utf-8"))
    assert [(u["source_index"], u["reason"]) for u in row["unprojected"]] == [(1, "unknown_label")]
    assert sorted(e["source_index"] for e in row["target"]["entities"]) == [0, 2, 3]


def test_labels_option_restricts_the_allowed_labels(tmp_path, monkeypatch, capsys):
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps(ES28) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    cli(monkeypatch, capsys, "project", src, "-o", out, "--llm", "none", "--labels", "LOC")
    row = json.loads(out.read_text(encoding="utf-8"))
    assert {u["source_index"]: u["reason"] for u in row["unprojected"]} == {
        0: "unknown_label",
        2: "unknown_label",
    }


@pytest.mark.parametrize(
    ("name", "raw", "reason"),
    [b for b in BAD_LINES if b[2] not in ("not_found", "ambiguous")],
    ids=[b[0] for b in BAD_LINES if b[2] not in ("not_found", "ambiguous")],
)
def test_strict_stops_at_the_faulty_line_with_file_and_line(
    tmp_path, monkeypatch, capsys, name, raw, reason
):
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps(GOOD) + "\n" + raw + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    code, _, err = cli(monkeypatch, capsys, "project", src, "-o", out, "--llm", "none", "--strict")
    assert code == 2
    assert f"{src}:2: " in err
    assert "Traceback" not in err
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [src]  # no temporary file left behind
    with pytest.raises(InputError) as info:  # the same run through the library
        run_project(src, out, strict=True, labels=known_labels())
    assert (info.value.line, info.value.reason.value) == (2, reason)


def test_strict_accepts_a_clean_file(tmp_path, monkeypatch, capsys):
    out = tmp_path / "out.jsonl"
    src = DEV / "europarl-en-it.jsonl"
    code, stdout, _ = cli(monkeypatch, capsys, "project", src, "-o", out, "--llm", "none",
                          "--strict", "--json")  # fmt: skip
    assert code == 0
    assert json.loads(stdout)["lines"] == 166
    assert len(out.read_text(encoding="utf-8").splitlines()) == 166


def test_missing_input_file_is_one_line_error(tmp_path, monkeypatch, capsys):
    code, _, err = cli(monkeypatch, capsys, "project", tmp_path / "nope.jsonl", "-o",
                       tmp_path / "o.jsonl", "--llm", "none")  # fmt: skip
    assert code == 2 and "nope.jsonl" in err and "not found" in err
    assert "Traceback" not in err


def test_summary_table_counts_methods_and_reasons(tmp_path, monkeypatch, capsys):
    out = tmp_path / "out.jsonl"
    code, stdout, _ = cli(monkeypatch, capsys, "project", DEV / "pud-en-zh.jsonl", "-o", out,
                          "--llm", "none")  # fmt: skip
    assert code == 0
    assert "placed: exact" in stdout and "reason: not_found" in stdout
    assert "196" in stdout


def test_source_index_refers_to_the_input_order_of_unsorted_entities(tmp_path, monkeypatch, capsys):
    d = with_(ES28, source__entities=list(reversed(ES28["source"]["entities"])))
    d["source"]["entities"][0]["label"] = "NATION"  # the last "Indonesia", now listed first
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps(d) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    code, _, err = cli(monkeypatch, capsys, "project", src, "-o", out, "--llm", "none")
    assert code == 0, err
    row = json.loads(out.read_text(encoding="utf-8"))
    got = {e["source_index"]: (e["start"], e["text"]) for e in row["target"]["entities"]}
    assert got == {1: (231, "Parlamento"), 2: (175, "Indonesia"), 3: (44, "Parlamento")}
    assert [(u["source_index"], u["reason"]) for u in row["unprojected"]] == [(0, "unknown_label")]
    assert row["source"] == d["source"]  # carried through untouched


def test_commit_assesses_the_pairs_and_commits_one_snapshot_once(tmp_path, monkeypatch, capsys):
    from parallelner import store
    from parallelner.settings import load_settings

    src = tmp_path / "in.jsonl"
    lines = [dev_line("europarl-en-de", n) for n in range(1, 21)]
    src.write_text("".join(json.dumps(d) + "\n" for d in lines) + "[1, 2]\n", encoding="utf-8")
    out, home = tmp_path / "out.jsonl", tmp_path / "home"
    args = ("project", src, "-o", out, "--llm", "none", "--home", home, "--commit")
    code, _, err = cli(monkeypatch, capsys, *args)
    assert code == 2 and "--commit needs --dataset" in err
    code, stdout, err = cli(monkeypatch, capsys, *args, "--dataset", "europarl", "--json")
    assert code == 0, err
    first = json.loads(stdout)["commit"]
    assert first["snapshot_new"] and first["not_committed"] == 1  # the broken line
    assert sum(first["by_status"].values()) == 20 and first["by_status"]["accepted"] > 0
    assert (Path(first["report_dir"]) / "report.json").exists()

    rows = store.load_snapshot("main", settings=load_settings(home=home)).to_pylist()
    assert len(rows) == 20
    assert {r["source_dataset"] for r in rows} == {"europarl"}
    assert {r["model"] for r in rows} == {"human"}
    by_id = {r["instance_id"]: r for r in rows}
    one = by_id[lines[0]["source"]["id"]]  # "European Parliament" -> "Europäischen Parlaments"
    assert one["status"] == "accepted" and one["back_translation"] is None
    assert [e["text"] for e in one["tgt_entities"]] == ["Europäischen Parlaments"]
    for r in rows:  # every projected span is a span of the human translation
        for e in r["tgt_entities"]:
            assert r["tgt_text"][e["start"] : e["end"]] == e["text"]
            assert r["src_entities"][e["source_index"]]["label"] == e["label"]

    code, stdout, err = cli(monkeypatch, capsys, *args, "--dataset", "europarl")
    assert code == 0, err
    assert f"snapshot: {first['snapshot_id']}" in stdout and "nothing new" in stdout
    assert len(store.list_snapshots(load_settings(home=home))) == 1
