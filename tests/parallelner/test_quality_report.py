"""The run report: counts add up, the plot renders, precision of `accepted` with a CI;
and `parallelner quality report|assess` as the installed console script."""

from __future__ import annotations

import base64
import json
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from parallelner.quality import assess_stream
from parallelner.quality.report import inline_images, summarize, wilson_interval, write_report
from parallelner.reasons import Reason, Status
from parallelner.records import ParallelRecord
from parallelner.settings import Settings
from parallelner.testing.samples import read_projection_drafts

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "data" / "projection-dev"
CLI = str(Path(sys.executable).parent / "parallelner")


def assessed() -> list[ParallelRecord]:
    """All projection-dev pairs, with a back-translation that is the source for 3 pairs in
    4 and another real source sentence for the rest, plus a failed and an empty one."""
    drafts = [r for f in sorted(DATA.glob("*.jsonl")) for r in read_projection_drafts(f)]
    rng = random.Random(7)
    sources = [r.src_text for r in drafts]
    drafts = [r.model_copy(update={"back_translation": r.src_text if rng.random() < 0.75
                                   else rng.choice(sources)}) for r in drafts]  # fmt: skip
    drafts.append(drafts[0].model_copy(update={"record_id": "failed", "status": Status.FAILED,
                                               "tgt_text": None, "reasons": (Reason.REPLY_EMPTY,)}))  # fmt: skip
    drafts.append(drafts[1].model_copy(update={"record_id": "empty", "tgt_text": " "}))
    return list(assess_stream(drafts, Settings()))


def test_counts_add_up_to_the_number_of_input_pairs(tmp_path):
    records = assessed()
    rep = write_report(records, tmp_path)
    assert rep.total == len(records) == 696
    assert sum(rep.by_status.values()) == rep.total
    assert sum(rep.provenance.values()) == rep.total
    for status, n in rep.by_status.items():
        assert sum(rep.deciding_reason[status].values()) == n
    assert rep.by_status["failed"] == 1
    assert rep.deciding_reason["failed"] == {"reply_empty": 1}
    assert rep.deciding_reason["rejected"]["empty_translation"] == 1
    assert rep.deciding_reason["rejected"]["low_backtranslation"] > 50
    assert rep.by_reason["audit_sample"] == rep.audit_sample > 0
    assert rep.precision is None  # nobody reviewed yet
    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert f"| **total** | **{len(records)}** |" in md
    assert json.loads((tmp_path / "report.json").read_text())["by_status"] == rep.by_status


def test_plot_is_a_png_with_the_score_panels(tmp_path):
    rep = write_report(assessed(), tmp_path, quality=Settings().quality)
    assert "min_chrf:25.0|review_chrf:40.0|" in rep.thresholds
    assert rep.thresholds in (tmp_path / "report.md").read_text(encoding="utf-8")
    png = Path(rep.files["plot"]).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    assert set(rep.scores) >= {"chrf", "bleu", "length_ratio", "tgt_script_share"}
    chrf = rep.scores["chrf"]
    assert chrf["p05"] < 25 < 99 < chrf["p50"] <= 100


def test_inline_images_carries_the_plot_inside_the_markdown(tmp_path):
    rep = write_report(assessed(), tmp_path)
    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "](scores.png)" in md  # the file next to the report keeps its relative link
    inlined = inline_images(md + "\n![gone](missing.png)\n", tmp_path)
    found = re.findall(
        r"!\[score distributions\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", inlined
    )
    assert len(found) == 1
    assert base64.b64decode(found[0]) == Path(rep.files["plot"]).read_bytes()
    assert "](scores.png)" not in inlined and "![gone](missing.png)" in inlined
    assert inlined.replace(found[0], "").count("base64") == 1  # everything else as it was
    assert inlined.split("(data:")[0] == md.split("(scores.png)")[0]


@pytest.mark.parametrize("k,n,low,high", [(8, 10, 0.4902, 0.9433), (0, 10, 0.0, 0.2775),
                                          (95, 100, 0.8883, 0.9785)])  # fmt: skip
def test_wilson_interval_matches_published_values(k, n, low, high):
    lo, hi = wilson_interval(k, n)
    assert lo == pytest.approx(low, abs=1e-4) and hi == pytest.approx(high, abs=1e-4)


def test_precision_of_accepted_from_the_reviewed_audit_sample():
    records = assessed()
    audited = [i for i, r in enumerate(records) if Reason.AUDIT_SAMPLE in r.reasons]
    assert len(audited) >= 5
    for j, i in enumerate(audited):  # reviewers answer all but one; the first is judged bad
        if j == len(audited) - 1:
            break
        status = Status.REVIEWED_REJECTED if j == 0 else Status.REVIEWED_ACCEPTED
        records[i] = records[i].model_copy(update={"status": status, "annotator": "ann"})
    rep, _ = summarize(records)
    p = rep.precision
    assert p.reviewed == len(audited) - 1 and p.good == len(audited) - 2
    assert p.precision == pytest.approx(p.good / p.reviewed)
    assert (p.low, p.high) == wilson_interval(p.good, p.reviewed)
    assert p.low < p.precision < p.high
    assert sum(rep.by_status.values()) == len(records)


# --- the CLI --------------------------------------------------------------------------


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, "quality", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env={"PATH": str(Path(sys.executable).parent), "COLUMNS": "200",
                                            "PYTHONPATH": str(REPO)})  # this tree's code  # fmt: skip


def test_cli_assess_then_report(tmp_path):
    drafts = tmp_path / "drafts.jsonl"
    with open(drafts, "w", encoding="utf-8") as fh:
        for r in read_projection_drafts(DATA / "pud-en-zh.jsonl"):
            fh.write(r.model_dump_json() + "\n")
    res = run("assess", str(drafts), "-o", str(tmp_path / "assessed.parquet"), "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["records"] == 196
    res = run("report", str(tmp_path / "assessed.parquet"), "-o", str(tmp_path / "rep"), "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["total"] == 196 == sum(out["by_status"].values())
    assert (tmp_path / "rep" / "scores.png").stat().st_size > 10_000
    res = run("report", str(drafts), "-o", str(tmp_path / "rep2"))
    assert res.returncode == 0 and "196 records" in res.stdout


def test_cli_bad_input_is_one_line_with_file_and_line(tmp_path):
    good = next(read_projection_drafts(DATA / "pud-en-zh.jsonl")).model_dump_json()
    bad = tmp_path / "bad.jsonl"
    bad.write_text(good + "\n" + '{"record_id": "x"' + "\n", encoding="utf-8")
    res = run("report", str(bad), "-o", str(tmp_path / "rep"))
    assert res.returncode == 2
    assert f"{bad}:2:" in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    res = run("report", str(tmp_path / "missing.parquet"), "-o", str(tmp_path / "rep"))
    assert res.returncode == 2 and "no such file" in res.stderr


def test_cli_invalid_utf8_is_reported_at_its_own_line(tmp_path):
    # far enough down that a text-mode reader (8 KiB chunks) would name an earlier line
    lines = [r.model_dump_json() for r in read_projection_drafts(DATA / "pud-en-zh.jsonl")][:40]
    bad = tmp_path / "bad.jsonl"
    raw = [line.encode("utf-8") for line in lines]
    raw[34] = raw[34][:20] + b"\xff" + raw[34][20:]
    bad.write_bytes(b"\n".join(raw) + b"\n")
    res = run("assess", str(bad), "-o", str(tmp_path / "out.jsonl"))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert f"{bad}:35: not UTF-8 (byte 0xff at byte 21 of the line)" in res.stderr
    assert not (tmp_path / "out.jsonl").exists()


def test_cli_output_that_cannot_be_written_is_one_line(tmp_path):
    drafts = tmp_path / "drafts.jsonl"
    first = next(read_projection_drafts(DATA / "pud-en-zh.jsonl"))
    drafts.write_text(first.model_dump_json() + "\n", encoding="utf-8")
    (tmp_path / "taken.jsonl").mkdir()
    (tmp_path / "a-file").write_text("x", encoding="utf-8")
    for args in (
        ("assess", str(drafts), "-o", str(tmp_path / "taken.jsonl")),
        ("report", str(drafts), "-o", str(tmp_path / "a-file")),
        ("assess", str(tmp_path / "taken.jsonl"), "-o", str(tmp_path / "out.jsonl")),
    ):
        res = run(*args)
        assert res.returncode == 2, args
        assert "Traceback" not in res.stderr
        assert len(res.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "drafts.jsonl", "taken.jsonl"]


def test_cli_help_explains_the_commands():
    res = run("report", "--help")
    assert res.returncode == 0
    assert "Wilson" in res.stdout and "--output" in res.stdout and "--json" in res.stdout
